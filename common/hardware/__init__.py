"""Accelerator spec sheets and this machine's measured profile, the inputs of the roofline models.

`get_spec("h100-64gb")` gives a vendor sheet; `get_spec("local")` the profile that
`python -m common.hardware probe` measured on this host and saved under results/hardware/.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from common.atomic import write_atomic
from common.errors import BadInput
from common.hardware.probe import probe
from common.hardware.specs import DTYPES, SPECS, DeviceSpec, hbm_bandwidth
from common.repo import REPO_ROOT

PROFILE_DIR = REPO_ROOT / "results" / "hardware"

__all__ = ["DTYPES", "SPECS", "DeviceSpec", "default_profile_path", "get_spec", "hbm_bandwidth",
           "load_profile", "probe", "save_profile"]


def default_profile_path(host: str | None = None) -> Path:
    return PROFILE_DIR / f"{host or socket.gethostname()}.json"


def save_profile(spec: DeviceSpec, path: str | Path | None = None) -> Path:
    path = Path(path) if path is not None else default_profile_path()
    write_atomic(path, json.dumps(spec.to_dict(), indent=2) + "\n")
    return path


def load_profile(path: str | Path) -> DeviceSpec:
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
    """A vendor sheet by key, or "local": this host's measured profile."""
    key = name.strip().lower().replace("_", "-")
    if key == "local":
        path = Path(profile_dir) / f"{socket.gethostname()}.json" if profile_dir else default_profile_path()
        if not path.exists():
            raise FileNotFoundError(f"no measured profile for this host at {path}; "
                                    f"run `python -m common.hardware probe` first")
        return load_profile(path)
    if key not in SPECS:
        raise KeyError(f"unknown device {name!r}; known: {', '.join(SPECS)}, local")
    return SPECS[key]
