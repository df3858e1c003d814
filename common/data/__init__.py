"""Offline-first dataset registry and federated partitions.

`load_dataset(name, data_dir)` returns a `Dataset` (x float32 [N, ...] or int64 token ids, y int64).
Offline names load from installed packages, system packages or generators; hub names load through HF
`datasets` where the hub is reachable or a converted copy sits in data_dir, and raise
`DatasetUnavailable` (exit status 2 under `entrypoint`) otherwise. A name with both (fashion_mnist)
is read offline where its files are installed and from the hub elsewhere.

`data_dir` is where converted copies are cached; callers pass `paths.data_dir` from their config (the
one source of that directory). Without it nothing is cached and hub datasets cannot load.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from common.data.dataset import Dataset, DatasetUnavailable, train_test_split
from common.data.hub import HUB, load_hub
from common.data.offline import GENERATORS, LOADERS, fashion_mnist_dir
from common.data.partition import SCHEMES, partition
from common.errors import BadInput

__all__ = [
    "Dataset",
    "DatasetUnavailable",
    "SCHEMES",
    "available",
    "hub_names",
    "known",
    "load_dataset",
    "partition",
    "train_test_split",
]

# offline loaders whose files may be missing on a machine: the hub is then the fallback
_INSTALLED = {"fashion_mnist": lambda: fashion_mnist_dir() is not None}


def available() -> list[str]:
    """Names that load on this machine without network."""
    return sorted(name for name in LOADERS if _INSTALLED.get(name, lambda: True)())


def hub_names() -> list[str]:
    """Names the HF hub serves (clusters; fashion_mnist also loads offline where Debian's files are):
    listed apart so an error can say which names need the network."""
    return sorted(HUB)


def known() -> list[str]:
    """Every name the registry serves somewhere (offline here, offline elsewhere, or from the hub)."""
    return sorted(set(LOADERS) | set(HUB))


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, **options) -> Dataset:
    """`seed` drives generated datasets only; real datasets are fixed (mnist1d is always the
    published seed-42 set). `options` go to generators, e.g. synthetic_gaussian(num_classes=2)."""
    data_dir = Path(data_dir) if data_dir is not None else None
    if options and name not in GENERATORS:
        raise BadInput(
            f"dataset '{name}' takes no options (got {sorted(options)}); "
            f"only {', '.join(sorted(GENERATORS))} do"
        )
    if name in GENERATORS:
        known_options = set(inspect.signature(GENERATORS[name]).parameters) - {"data_dir", "seed"}
        if set(options) - known_options:
            raise BadInput(
                f"dataset '{name}': unknown options {sorted(set(options) - known_options)}; "
                f"it takes {', '.join(sorted(known_options))}"
            )
    if name in LOADERS and (name not in HUB or name in available()):
        return LOADERS[name](data_dir, seed, **options)
    if name in HUB:
        return load_hub(name, data_dir, available())
    raise BadInput(
        f"unknown dataset '{name}'; offline: {', '.join(available())}; "
        f"from the HF hub: {', '.join(hub_names())}"
    )
