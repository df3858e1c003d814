"""Replay backend: a recorded power trace (CSV) played back on a clock the caller drives.

Tests of energy-per-token and similar metrics need known energies without a GPU: a trace at a constant
100 W read over a 2 s window must give 200 J. Power is linear between trace points, so a window's
energy is the trapezoid rule with the edges interpolated; a cumulative energy_j column, when recorded,
is used instead (linear between points), as the NVML counter would be.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import BadInput
from common.gpu_metrics.readings import Reading

REQUIRED = ("time_s", "device", "power_w")
OPTIONAL = ("energy_j", "utilization_pct", "memory_bytes")


class Trace:
    """One device's recorded columns as arrays, with the power integral precomputed at each point."""

    def __init__(self, frame: pd.DataFrame):
        self.t = frame["time_s"].to_numpy(float)
        self.power = frame["power_w"].to_numpy(float)
        self.columns = {c: frame[c].to_numpy(float) for c in OPTIONAL if c in frame}
        steps = np.diff(self.t) * (self.power[1:] + self.power[:-1]) / 2
        self.power_integral = np.concatenate([[0.0], np.cumsum(steps)])

    def energy_at(self, t: float) -> float:
        """Cumulative energy in J at time t: the recorded column if any, else the integral of linear power."""
        if "energy_j" in self.columns:
            return float(np.interp(t, self.t, self.columns["energy_j"]))
        i = min(int(np.searchsorted(self.t, t, side="right")) - 1, len(self.t) - 1)
        power_t = np.interp(t, self.t, self.power)
        return float(self.power_integral[i] + (t - self.t[i]) * (self.power[i] + power_t) / 2)

    def reading(self, t: float) -> Reading:
        """The device's Reading at time t, every column linear between trace points."""
        interp = {c: float(np.interp(t, self.t, v)) for c, v in self.columns.items()}
        memory = interp.get("memory_bytes")
        return Reading(
            energy_j=self.energy_at(t),
            power_w=float(np.interp(t, self.t, self.power)),
            utilization_pct=interp.get("utilization_pct"),
            memory_bytes=None if memory is None else round(memory),
        )


def load_trace(path: str | os.PathLike) -> dict[str, Trace]:
    """Traces by device from a CSV with columns time_s, device, power_w and optionally OPTIONAL.

    Raises BadInput for anything a replay could misread: a missing column, blanks in some of a device's
    rows, fewer than two rows or non-increasing time_s per device, an energy_j that is not cumulative.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise BadInput(f"replay trace {path}: cannot read it ({err})") from err
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise BadInput(
            f"replay trace {path}: missing column(s) {missing}; needs {list(REQUIRED)}, "
            f"optional {list(OPTIONAL)}"
        )
    numeric = [c for c in ("time_s", "power_w", *OPTIONAL) if c in frame]
    bad = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
    blank = [c for c in ("time_s", "device", "power_w") if frame[c].isna().any()]
    if bad or blank or frame.empty:
        raise BadInput(f"replay trace {path}: empty, or blank/non-numeric values in {bad + blank}")
    traces = {}
    for device, rows in frame.groupby(frame["device"].astype(str), sort=False):
        if len(rows) < 2 or not np.all(np.diff(rows["time_s"].to_numpy(float)) > 0):
            raise BadInput(f"replay trace {path}: device {device!r} needs >= 2 rows with increasing time_s")
        partial = [c for c in OPTIONAL if c in rows and rows[c].isna().any() and rows[c].notna().any()]
        if partial:  # a column may be left blank for a whole device, never for some of its rows
            raise BadInput(f"replay trace {path}: device {device!r} has blanks in {partial}")
        rows = rows.dropna(axis=1, how="all")
        if "energy_j" in rows and np.any(np.diff(rows["energy_j"].to_numpy(float)) < 0):
            raise BadInput(f"replay trace {path}: energy_j of device {device!r} must be cumulative")
        traces[device] = Trace(rows)
    return traces


class ReplayBackend:
    """A recorded trace as a backend, so energy arithmetic is tested against known joules without hardware.

    devices picks trace devices (BadInput for one not in it); the clock must stay inside the span every
    chosen device covers.
    """

    name = "replay"
    energy_missing_reason = None
    needs_sampler = False  # the trace itself holds every point a window needs

    def __init__(self, csv: str | os.PathLike, devices: list[str] | None = None):
        self.csv = Path(csv)
        traces = load_trace(self.csv)
        unknown = sorted(set(devices or []) - set(traces))
        if unknown:
            raise BadInput(f"replay trace {self.csv}: devices {unknown} are not in it (has {sorted(traces)})")
        self.traces = {d: traces[d] for d in (devices or traces)}
        self.devices = list(self.traces)
        self.energy_source = {
            d: "replay_energy_column" if "energy_j" in tr.columns else "replay_power_integration"
            for d, tr in self.traces.items()
        }
        self.start = max(tr.t[0] for tr in self.traces.values())
        self.end = min(tr.t[-1] for tr in self.traces.values())
        self.time_origin = self.start

    def read(self, t: float) -> dict[str, Reading]:
        """Readings at time t; ValueError outside the span every device covers (no energy recorded there)."""
        if not self.start <= t <= self.end:
            raise ValueError(
                f"replay clock at {t} s is outside the trace {self.csv} "
                f"[{self.start}, {self.end}] s; energy there was not recorded"
            )
        return {d: tr.reading(t) for d, tr in self.traces.items()}

    def history(self, t0: float, t1: float) -> list[tuple[float, dict[str, Reading]]]:
        """The recorded points strictly inside (t0, t1): peaks and utilisation see every one of them."""
        times = np.unique(np.concatenate([tr.t for tr in self.traces.values()]))
        return [(float(t), self.read(float(t))) for t in times[(times > t0) & (times < t1)]]

    def sync(self) -> None:
        """Nothing to wait for: the trace is already recorded."""
        pass

    def describe(self) -> dict:
        """The trace file and the span it covers, for a run's metadata."""
        return {"replay_csv": str(self.csv), "trace_span_s": [self.start, self.end]}

    def close(self) -> None:
        """Nothing to release."""
        pass
