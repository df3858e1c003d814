"""What every benchmark writes beside its numbers: when, where, and with which versions it ran."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from common.repo import REPO_ROOT
from common.runinfo import git_state, hardware_summary, package_versions

DEFAULT_DIR = REPO_ROOT / "results" / "serving" / "bench"


def random_prompts(batch: int, prompt_len: int, vocab: int, seed: int = 0) -> list[list[int]]:
    return np.random.default_rng(seed).integers(4, vocab, (batch, prompt_len)).tolist()


def provenance(device: torch.device) -> dict:
    hw = hardware_summary()
    if device.type == "cuda":
        hw["device"] = torch.cuda.get_device_name(device)
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "hardware": hw, "git": git_state(),
            "packages": {k: v for k, v in package_versions(("torch", "transformers", "numpy")).items()},
            "torch_threads": torch.get_num_threads()}


def write_json(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
