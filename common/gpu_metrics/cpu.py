"""CPU backend: package energy from Intel RAPL (powercap sysfs), process CPU time and resident memory.

RAPL counts the whole socket (every process on it), while CPU time and RSS are this process's own; all
of it is reported as the single device "cpu". Since Linux 5.10 energy_uj is root-only on most distros
(the PLATYPUS side channel), so on shared machines energy is usually missing, with that reason.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.gpu_metrics.readings import Reading

POWERCAP_ROOT = Path("/sys/class/powercap")
PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")  # intel-rapl:0:0 etc. are sub-zones (core, dram)
DEVICE = "cpu"


@dataclass
class RaplDomain:
    """One package counter; wraps are undone by comparing each read with the previous one."""

    path: Path
    name: str
    max_range_uj: int
    last_uj: int = -1
    wraps: int = 0

    def read_uj(self) -> int:
        """Cumulative package energy in µJ, wraps undone; read more often than one wrap or a wrap is lost."""
        raw = int((self.path / "energy_uj").read_text())
        if 0 <= raw < self.last_uj:  # the counter passed max_energy_range_uj and restarted from 0
            self.wraps += 1
        self.last_uj = raw
        return raw + self.wraps * self.max_range_uj


def find_rapl_domains(root: Path = POWERCAP_ROOT) -> tuple[list[RaplDomain], str | None]:
    """Readable package domains, or [] and why none can be used (all packages or none, never a part)."""
    where = f"under {root}"
    if not root.is_dir():
        return [], f"no RAPL domain readable {where} (the directory does not exist)"
    zones = sorted(p for p in root.iterdir() if PACKAGE_ZONE.match(p.name))
    domains = []
    for zone in zones:
        try:
            name = (zone / "name").read_text().strip()
            if not name.startswith("package"):
                continue
            domain = RaplDomain(zone, name, int((zone / "max_energy_range_uj").read_text()))
            domain.read_uj()
        except PermissionError:
            return [], f"no RAPL domain readable {where} ({zone.name}: permission denied, root-only)"
        except (OSError, ValueError) as err:
            return [], f"no RAPL domain readable {where} ({zone.name}: {type(err).__name__}: {err})"
        domains.append(domain)
    if not domains:
        return [], f"no RAPL domain readable {where} (no intel-rapl package zone)"
    return domains, None


def _proc_status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int | None:
    peak = _proc_status_bytes("VmHWM")
    if peak is None:  # no /proc (macOS): ru_maxrss is bytes there, kB on Linux
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss if sys.platform == "darwin" else rss * 1024
    return peak


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's), the share a job really has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class CPUBackend:
    """The one device "cpu": RAPL package energy (whole socket, often root-only), this process's time and RSS.

    devices may only be None or ["cpu"] (ValueError otherwise), so the signature matches the other backends.
    """

    name = "cpu"
    time_origin = 0.0

    def __init__(self, devices: list[str] | None = None, rapl_root: str | os.PathLike = POWERCAP_ROOT):
        if devices is not None and list(devices) != [DEVICE]:
            raise ValueError(f"the cpu backend has the one device {DEVICE!r}, got devices={devices!r}")
        self.devices = [DEVICE]
        self.rapl_root = Path(rapl_root)
        self.domains, self.energy_missing_reason = find_rapl_domains(self.rapl_root)
        self.energy_source = {DEVICE: "rapl_package" if self.domains else None}
        self.needs_sampler = bool(self.domains)  # a window longer than one wrap period needs reads inside
        self.cores = usable_cores()

    def read(self, t: float) -> dict[str, Reading]:
        """The "cpu" Reading; energy_j is None without readable RAPL; busy_s: CPU seconds per usable core."""
        energy = sum(d.read_uj() for d in self.domains) / 1e6 if self.domains else None
        return {
            DEVICE: Reading(
                energy_j=energy,
                memory_bytes=_proc_status_bytes("VmRSS"),
                memory_peak_bytes=_peak_rss_bytes(),
                busy_s=time.process_time() / self.cores,
            )
        }

    def sync(self) -> None:
        """Nothing to wait for: CPU work is done when the call returns."""
        pass

    def describe(self) -> dict:
        """What is measured and over which scope, for a run's metadata."""
        return {
            "rapl_root": str(self.rapl_root),
            "rapl_domains": [f"{d.path.name} ({d.name})" for d in self.domains],
            "usable_cores": self.cores,
            "scope": "energy: whole CPU packages (all processes); time and memory: this process",
        }

    def close(self) -> None:
        """Nothing to release; here so every backend closes alike."""
        pass
