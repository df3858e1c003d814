"""What a reader needs to trust a result: code version, packages, machine and scheduler of the run.

Environment variables are never copied wholesale: only SLURM ids and an allow-list. A value whose key
names a secret (token, key, password, secret, credential as a whole word of the name: `hf_token`,
`WANDB_API_KEY`, but not `warmup_tokens`) is replaced wherever a config or record is written, because
run directories get shared and uploaded to wandb.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from common.repo import REPO_ROOT

SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"}
REDACTED = "<redacted>"
PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "flwr",
    "flwr-datasets",
    "hydra-core",
    "omegaconf",
    "submitit",
    "wandb",
    "nvidia-ml-py",
    "numpy",
    "pandas",
    "scikit-learn",
    "vllm",
    "zeus",
)
ENV_ALLOW = (
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "WANDB_MODE",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "CI",
)
SLURM_VARS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_PARTITION",
    "SLURM_NODELIST",
    "SLURM_RESTART_COUNT",
    "SLURM_SUBMIT_DIR",
)


def is_secret(name: str) -> bool:
    """Whether a key names a secret: one of SECRET_WORDS as a whole word (split at non-letters and at
    camelCase humps), so `HF_TOKEN`, `engine_options.hf_token` and `apiKey` are, `warmup_tokens` is not."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    return bool(SECRET_WORDS & set(re.split(r"[^a-z0-9]+", words)))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state() -> dict:
    """HEAD's sha and whether tracked files differ from it; either is None where git cannot answer."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def package_versions(names=PACKAGES) -> dict:
    """The installed version of each distribution, None where it is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform reports; never raises."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_models() -> list[str]:
    """GPU names through torch, only if torch is already imported (runinfo must stay cheap)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def hardware_summary() -> dict:
    """Host, CPU, GPUs, platform and torch threads, without importing torch.

    `device` names what a run measures on: the first GPU, else "CPU: <model>".
    """
    info = {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_models(),
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    info["torch_threads"] = torch.get_num_threads() if torch is not None else None
    info["device"] = info["gpus"][0] if info["gpus"] else f"CPU: {info['cpu']}"
    return info


def collect(extra: dict | None = None) -> dict:
    """Everything runinfo.json records about a run, plus `extra`, with secret values scrubbed."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ and not is_secret(k)}
    info = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": [scrub_override(a) for a in sys.argv],
        "python": sys.version.split()[0],
        "git": git_state(),
        "packages": package_versions(),
        "hardware": hardware_summary(),
        "slurm": {k: os.environ[k] for k in SLURM_VARS if k in os.environ},
        "env": env,
    }
    if extra:
        info.update(extra)
    return scrub(info)


def scrub(obj):
    """The same data with the value of every key that names a secret replaced, at any depth."""
    if isinstance(obj, dict):
        return {k: REDACTED if is_secret(k) and v is not None else scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def scrub_override(arg: str) -> str:
    """A command-line `key=value` with the value replaced where the key names a secret."""
    key, sep, _ = arg.partition("=")
    return f"{key}={REDACTED}" if sep and is_secret(key.lstrip("+~")) else arg
