"""Offline-first dataset registry and federated partitions.

`load_dataset(name)` returns a `Dataset` (x float32 [N, ...], y int64). Offline names work on any
machine; hub names load through HF `datasets` where the hub is reachable or a converted copy sits in
data_dir, and raise `DatasetUnavailable` (exit status 2 under `entrypoint`) otherwise.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from common.data.dataset import Dataset, train_test_split
from common.data.hub import HUB, DatasetUnavailable, load_hub
from common.data.offline import GENERATORS, LOADERS
from common.data.partition import SCHEMES, partition
from common.errors import BadInput
from common.repo import REPO_ROOT

DEFAULT_DATA_DIR = REPO_ROOT / "data"  # = conf paths.data_dir; git-ignored

__all__ = ["Dataset", "DatasetUnavailable", "SCHEMES", "available", "hub_names", "load_dataset",
           "partition", "train_test_split"]


def available() -> list[str]:
    """Names that load on any machine, without network."""
    return sorted(LOADERS)


def hub_names() -> list[str]:
    return sorted(HUB)


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, **options) -> Dataset:
    """`seed` drives generated datasets only; real datasets are fixed (mnist1d is always the
    published seed-42 set). `options` go to generators, e.g. synthetic_gaussian(num_classes=2)."""
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    if options and name not in GENERATORS:
        raise BadInput(f"dataset '{name}' takes no options (got {sorted(options)}); "
                       f"only {', '.join(sorted(GENERATORS))} do")
    if name in GENERATORS:
        known = set(inspect.signature(GENERATORS[name]).parameters) - {"data_dir", "seed"}
        if set(options) - known:
            raise BadInput(f"dataset '{name}': unknown options {sorted(set(options) - known)}; "
                           f"it takes {', '.join(sorted(known))}")
    if name in LOADERS:
        return LOADERS[name](data_dir, seed, **options)
    if name in HUB:
        return load_hub(name, data_dir, available())
    raise BadInput(f"unknown dataset '{name}'; offline: {', '.join(available())}; "
                   f"from the HF hub: {', '.join(hub_names())}")
