"""The SLURM resource table (conf/slurm/profiles.yaml) and its reader, shared by the sbatch renderer
and the hydra launcher profiles so the two never ask for different shares of a node."""

from __future__ import annotations

from functools import cache

from common.errors import BadInput
from common.repo import CONF_DIR

PROFILES = CONF_DIR / "slurm" / "profiles.yaml"
KEYS = ("cpus_per_task", "mem_gb", "time_min", "gpus")


@cache
def profiles() -> dict[str, dict[str, int]]:
    """Every profile by name, each with the keys in KEYS as positive integers (gpus may be 0)."""
    import yaml

    table = yaml.safe_load(PROFILES.read_text()) or {}
    for name, values in table.items():
        if not isinstance(values, dict) or set(values) != set(KEYS):
            raise BadInput(f"{PROFILES}: profile {name!r} must have exactly {', '.join(KEYS)}")
        if not all(isinstance(v, int) and v >= 0 for v in values.values()):
            raise BadInput(f"{PROFILES}: profile {name!r}: values must be non-negative integers")
    return table


def profile(name: str) -> dict[str, int]:
    """One profile; an unknown name is bad input naming the choices."""
    table = profiles()
    if name not in table:
        raise BadInput(f"job.profile={name!r} is not in {PROFILES} (choices: {', '.join(table)})")
    return table[name]


def profile_value(name: str, key: str) -> int:
    """`${slurm:gpu1,cpus_per_task}` in a hydra launcher profile."""
    return profile(name)[key]


def sbatch_time(minutes: int) -> str:
    """SLURM's --time format, HH:MM:SS."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"
