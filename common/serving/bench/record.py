"""What every benchmark writes beside its numbers: when, where, and with which versions it ran.

Where a benchmark writes is its config's `out` (under ${paths.results_dir}); nothing here names a
results directory.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from common.atomic import write_atomic
from common.runinfo import git_state, hardware_summary, package_versions


def random_prompts(batch: int, prompt_len: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """batch x prompt_len random token ids, the same for a seed; ids below 4 are left out (special tokens)."""
    import numpy as np

    return np.random.default_rng(seed).integers(4, vocab, (batch, prompt_len)).tolist()


def provenance(device) -> dict:
    """Time, hardware (a GPU by its name), commit, package versions and torch threads of a run on
    `device` (a torch.device)."""
    import torch

    hw = hardware_summary()
    if device.type == "cuda":
        hw["device"] = torch.cuda.get_device_name(device)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hardware": hw,
        "git": git_state(),
        "packages": {k: v for k, v in package_versions(("torch", "transformers", "numpy")).items()},
        "torch_threads": torch.get_num_threads(),
    }


def to_plain(cfg) -> dict:
    """A command's config as plain data: a schema instance (the hydra-free path) or a DictConfig."""
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def write_json(path: str | Path, payload: dict) -> Path:
    """`payload` as indented JSON, written atomically."""
    return write_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
