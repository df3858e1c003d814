"""Accelerator spec sheets, this machine's measured profile, and the memory of the device a run uses.

`get_spec("h100-64gb")` gives a vendor sheet; `get_spec("local", profile_dir)` the profile that
`python -m common.hardware.probe` measured on this host and saved as <profile_dir>/<hostname>.json.
The profiles live under the results directory (`profile_dir(cfg.paths.results_dir)`), which only the
config (conf/paths) names. `python -m common.hardware.table` prints the sheets; the probe itself is
`common.hardware.probe.probe` (not imported here, so `python -m common.hardware.probe` runs cleanly).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from common.atomic import write_atomic
from common.errors import BadInput
from common.hardware.memory import DeviceMemory, device_memory, host_memory_bytes
from common.hardware.specs import DTYPES, SPECS, DeviceSpec, hbm_bandwidth, spec_for_device

__all__ = [
    "DTYPES",
    "SPECS",
    "DeviceMemory",
    "DeviceSpec",
    "device_memory",
    "get_spec",
    "hbm_bandwidth",
    "host_memory_bytes",
    "load_profile",
    "profile_dir",
    "profile_path",
    "save_profile",
    "spec_for_device",
]


def profile_dir(results_dir: str | Path) -> Path:
    """Where measured profiles are kept under a results directory (`paths.results_dir`)."""
    return Path(results_dir) / "hardware"


def profile_path(folder: str | Path, host: str | None = None) -> Path:
    """A host's profile in `folder` (a `profile_dir`); this host by default."""
    return Path(folder) / f"{host or socket.gethostname()}.json"


def save_profile(spec: DeviceSpec, path: str | Path) -> Path:
    """Write `spec` as JSON atomically (a killed probe leaves no half profile); returns the path."""
    write_atomic(path, json.dumps(spec.to_dict(), indent=2) + "\n")
    return Path(path)


def load_profile(path: str | Path) -> DeviceSpec:
    """Read a profile save_profile wrote; BadInput for bad JSON, a missing field or a non-positive rate.

    A missing file raises FileNotFoundError, as from any read.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not a JSON hardware profile ({e})") from e
    fields = ("name", "peak_flops", "mem_bandwidth", "mem_bytes", "source")
    missing = [f for f in fields if not isinstance(data, dict) or f not in data]
    if missing:
        raise BadInput(f"{path}: hardware profile lacks {', '.join(missing)}")
    if not data["mem_bandwidth"] > 0 or not all(v > 0 for v in data["peak_flops"].values()):
        raise BadInput(f"{path}: mem_bandwidth and peak_flops must be positive")
    return DeviceSpec(**{f: data[f] for f in fields}, measured=data.get("measured"))


def get_spec(name: str, profile_dir: str | Path | None = None) -> DeviceSpec:
    """A vendor sheet by key, or "local": this host's measured profile in `profile_dir`."""
    key = name.strip().lower().replace("_", "-")
    if key == "local":
        if profile_dir is None:
            raise FileNotFoundError(
                "the local profile needs its folder (profile_dir: normally "
                "${paths.results_dir}/hardware); none was given"
            )
        path = profile_path(profile_dir)
        if not path.exists():
            raise FileNotFoundError(
                f"no measured profile for this host at {path}; run `python -m common.hardware.probe` first"
            )
        return load_profile(path)
    if key not in SPECS:
        raise KeyError(f"unknown device {name!r}; known: {', '.join(SPECS)}, local")
    return SPECS[key]
