"""Named measurement windows and a background sampler over one backend (NVML, CPU or a replayed trace).

A window reads every device at its two edges; energy is the difference of the device's energy counter
where there is one, else sampled power integrated with the trapezoid rule over the edges and the
sampler's points in between. The sampler starts by itself when a backend needs it (power integration,
RAPL wrap-around), so a caller cannot get a two-point integral by forgetting to start it.
Memory: the sampler keeps every timeline row (about 100 B per device and sample), so day-long runs
should lower sample_hz; window state is pruned once no open window needs it.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common.errors import BadInput
from common.gpu_metrics.cpu import CPUBackend
from common.gpu_metrics.nvml import NVMLBackend
from common.gpu_metrics.readings import Backend, BackendUnavailable, Reading
from common.gpu_metrics.replay import ReplayBackend

log = logging.getLogger(__name__)
BACKENDS = ("auto", "nvml", "cpu", "replay")
TIMELINE_COLUMNS = ["time_s", "device", "power_w", "utilization_pct", "memory_bytes"]
Points = list[tuple[float, Reading]]


@dataclass(frozen=True)
class Measurement:
    """One window. Per-device dicts are keyed by device ("cuda:0", "cpu", a trace's device name).

    energy_j is None when no device has energy, and a device maps to None when only it lacks energy;
    total_energy_j is None unless every device has it (a partial sum would pass for a total).
    """

    name: str
    backend: str
    devices: tuple[str, ...]
    start_s: float
    end_s: float
    time_s: float
    energy_j: dict[str, float | None] | None
    total_energy_j: float | None
    energy_missing_reason: str | None
    energy_source: dict[str, str | None]
    mean_power_w: dict[str, float | None]
    total_mean_power_w: float | None
    peak_memory_bytes: dict[str, int | None]
    utilization_pct: dict[str, float | None]
    n_samples: int  # points inside the window besides its two edges

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able columns for a result row: totals over devices, mean utilisation.

        peak_memory_bytes is the sum of each device's own peak (the footprint a run needs across its
        devices; peaks at different instants make it an upper bound on the simultaneous peak).
        """
        peaks = [v for v in self.peak_memory_bytes.values() if v is not None]
        utils = [v for v in self.utilization_pct.values() if v is not None]
        sources = sorted({s for s in self.energy_source.values() if s})
        return {
            "backend": self.backend,
            "devices": ",".join(self.devices),
            "time_s": self.time_s,
            "energy_j": self.total_energy_j,
            "mean_power_w": self.total_mean_power_w,
            "peak_memory_bytes": sum(peaks) if len(peaks) == len(self.devices) else None,
            "utilization_pct": float(np.mean(utils)) if utils else None,
            "energy_source": "+".join(sources) or None,
            "energy_missing_reason": self.energy_missing_reason,
        }


def _energy(points: Points, counter_source: str | None, backend: str) -> tuple[float | None, str | None]:
    """Energy over the window and how it was obtained, or (None, None)."""
    (t0, first), (t1, last) = points[0], points[-1]
    if first.energy_j is not None and last.energy_j is not None:
        return last.energy_j - first.energy_j, counter_source
    if t1 == t0:
        return 0.0, f"{backend}_power_integration"
    power = [(t, r.power_w) for t, r in points if r.power_w is not None]
    if first.power_w is None or last.power_w is None or len(power) < 2:
        return None, None
    times, watts = zip(*power)
    return float(np.trapezoid(watts, times)), f"{backend}_power_integration"


def _utilization(points: Points) -> float | None:
    """Busy-time difference where the backend counts busy time, else the time-weighted mean of samples."""
    (t0, first), (t1, last) = points[0], points[-1]
    if first.busy_s is not None and last.busy_s is not None and t1 > t0:
        return 100.0 * (last.busy_s - first.busy_s) / (t1 - t0)
    util = [(t, r.utilization_pct) for t, r in points if r.utilization_pct is not None]
    if not util:
        return None
    times, values = zip(*util)
    span = times[-1] - times[0]
    return float(np.trapezoid(values, times) / span) if span > 0 else float(np.mean(values))


def _peak_memory(points: Points) -> int | None:
    first, last = points[0][1], points[-1][1]
    values = [r.memory_bytes for _, r in points if r.memory_bytes is not None]
    hwm_first, hwm_last = first.memory_peak_bytes, last.memory_peak_bytes
    if hwm_first is not None and hwm_last is not None and hwm_last > hwm_first:
        values.append(hwm_last)  # the process set a new high-water mark inside this window
    return max(values) if values else None


def make_backend(kind: str, devices=None, replay_csv=None) -> tuple[Backend, str | None]:
    """The backend named by `kind`, and why auto mode fell back to the CPU (None if it did not)."""
    if kind == "nvml":
        try:
            return NVMLBackend(devices), None
        except BackendUnavailable as err:
            raise BackendUnavailable(f"backend='nvml' requested, but {err}") from err
    if kind == "cpu":
        return CPUBackend(devices), None
    if kind == "replay":
        if replay_csv is None:
            raise BadInput("backend='replay' needs replay_csv=<recorded trace CSV>")
        return ReplayBackend(replay_csv, devices), None
    if kind == "auto":
        try:
            return NVMLBackend(devices), None
        except BackendUnavailable as err:
            log.info("gpu_metrics: NVML unavailable (%s); measuring the CPU instead", err)
            return CPUBackend(), str(err)
    raise BadInput(f"gpu_metrics backend={kind!r}: choose one of {BACKENDS}")


class Monitor:
    """Windows by name (they may nest and overlap) plus an optional background sampler.

    backend: "auto" (NVML if it initialises and shows a GPU, else CPU), "nvml", "cpu", "replay", or a
    backend object. clock: seconds as a float; by default seconds since the Monitor was made (from the
    trace's first time for replay); tests inject their own so windows land on chosen trace times.
    close() (or `with`) stops the sampler and shuts NVML down; timeline() times are on this clock.
    """

    def __init__(
        self,
        backend: str | Backend = "auto",
        devices: list | None = None,
        sample_hz: float = 10.0,
        replay_csv=None,
        clock: Callable[[], float] | None = None,
    ):
        if not sample_hz > 0:
            raise BadInput(f"gpu_metrics sample_hz={sample_hz!r} must be > 0")
        if isinstance(backend, str):
            self.backend, self.fallback_reason = make_backend(backend, devices, replay_csv)
        elif devices is None and replay_csv is None:
            self.backend, self.fallback_reason = backend, None
        else:
            raise BadInput("gpu_metrics: devices and replay_csv go to the backend object, not the Monitor")
        self.sample_hz = float(sample_hz)
        if clock is None:
            origin, start = self.backend.time_origin, time.perf_counter()
            clock = lambda: origin + time.perf_counter() - start
        self.clock = clock
        self.started_unix = time.time()  # aligns the clock's seconds with wall-clock logs
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, dict[str, Reading]]] = {}
        self._sample_times: list[float] = []
        self._samples: list[dict[str, Reading]] = []
        self._rows: list[tuple] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampler_error: BaseException | None = None
        self._warned_zero = False
        self._closed = False

    @property
    def devices(self) -> list[str]:
        """Device labels as they key every Measurement, in the backend's order (a copy)."""
        return list(self.backend.devices)

    def _read_locked(self) -> tuple[float, dict[str, Reading]]:
        """Callers hold self._lock: RAPL wrap tracking and the sample lists are shared with the sampler."""
        t = self.clock()
        return t, self.backend.read(t)

    # ---- windows ----------------------------------------------------------------------------------
    def begin_window(self, name: str) -> None:
        """Open window `name` at a synced read, starting the sampler if the backend needs it.

        Raises ValueError if a window of that name is already open.
        """
        if name in self._windows:
            raise ValueError(f"gpu_metrics window {name!r} is already open")
        if self.backend.needs_sampler and self._thread is None:
            log.info(
                "gpu_metrics: starting the sampler at %.3g Hz (%s energy needs readings inside windows)",
                self.sample_hz,
                self.backend.name,
            )
            self.start_sampler()
        self.backend.sync()
        with self._lock:  # registered with its read, so the sampler cannot prune points it needs
            self._windows[name] = self._read_locked()

    def end_window(self, name: str) -> Measurement:
        """Close window `name` and measure it; ValueError if it is not open."""
        if name not in self._windows:
            raise ValueError(f"gpu_metrics window {name!r} is not open (open: {sorted(self._windows)})")
        self.backend.sync()
        with self._lock:
            t1, end = self._read_locked()
            t0, begin = self._windows.pop(name)
            inner = self._inner_points_locked(t0, t1)
            self._prune_locked()
        return self._measure(name, t0, begin, t1, end, inner)

    def _inner_points_locked(self, t0: float, t1: float) -> list[tuple[float, dict[str, Reading]]]:
        history = getattr(self.backend, "history", None)
        if history is not None:
            return history(t0, t1)
        lo = bisect.bisect_right(self._sample_times, t0)
        hi = bisect.bisect_left(self._sample_times, t1)
        return list(zip(self._sample_times[lo:hi], self._samples[lo:hi]))

    def _prune_locked(self) -> None:
        """Drop samples no open window needs; keep the last, as the timeline's next rates diff with it."""
        keep_from = min((t for t, _ in self._windows.values()), default=float("inf"))
        cut = min(bisect.bisect_left(self._sample_times, keep_from), len(self._samples) - 1)
        if cut > 0:
            del self._sample_times[:cut], self._samples[:cut]

    def _measure(self, name, t0, begin, t1, end, inner) -> Measurement:
        b = self.backend
        energy, source, missing, peak, util, power = {}, {}, {}, {}, {}, {}
        duration = t1 - t0
        for d in b.devices:
            points = [(t0, begin[d]), *((t, r[d]) for t, r in inner), (t1, end[d])]
            energy[d], source[d] = _energy(points, b.energy_source.get(d), b.name)
            if energy[d] is None:
                missing[d] = b.energy_missing_reason or "no energy counter and no power reading at both edges"
            elif energy[d] == 0.0 and duration > 0 and not self._warned_zero:
                self._warned_zero = True
                log.warning(
                    "gpu_metrics: %s used 0 J in window %r (%.3g s): shorter than the counter's "
                    "update period; measure longer windows",
                    d,
                    name,
                    duration,
                )
            power[d] = energy[d] / duration if energy[d] is not None and duration > 0 else None
            peak[d], util[d] = _peak_memory(points), _utilization(points)
        have = [e for e in energy.values() if e is not None]
        total = sum(have) if len(have) == len(energy) else None
        reason = "; ".join(f"{d}: {r}" for d, r in missing.items()) or None
        if len(missing) == len(energy) and len(set(missing.values())) == 1:
            reason = next(iter(missing.values()))  # e.g. the CPU's one "no RAPL ..." reason, unprefixed
        return Measurement(
            name=name,
            backend=b.name,
            devices=tuple(b.devices),
            start_s=t0,
            end_s=t1,
            time_s=duration,
            energy_j=energy if have else None,
            total_energy_j=total,
            energy_missing_reason=reason,
            energy_source=source,
            mean_power_w=power,
            total_mean_power_w=total / duration if total is not None and duration > 0 else None,
            peak_memory_bytes=peak,
            utilization_pct=util,
            n_samples=len(inner),
        )

    # ---- sampler ----------------------------------------------------------------------------------
    def start_sampler(self) -> None:
        """Read every device sample_hz times a second on a daemon thread (timeline rows, power integration).

        Starting it twice is a no-op; windows start it themselves where the backend needs it.
        """
        if self._thread is not None:
            return
        self._stop.clear()
        self._sampler_error = None
        self._thread = threading.Thread(target=self._sample_loop, name="gpu_metrics-sampler", daemon=True)
        self._thread.start()

    def stop_sampler(self) -> None:
        """Stop and join the thread; raises if it died on an error (a silent gap would skew energies)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(5.0, 2.0 / self.sample_hz))
        if thread.is_alive():
            log.warning("gpu_metrics: the sampler thread did not stop within its join timeout")
        error, self._sampler_error = self._sampler_error, None
        if error is not None:
            raise RuntimeError(f"gpu_metrics sampler stopped early: {error}") from error

    def _sample_loop(self) -> None:
        period = 1.0 / self.sample_hz
        due = time.perf_counter()
        while not self._stop.is_set():
            try:
                self._sample_once()
            except Exception as err:
                log.exception("gpu_metrics: sampler failed; no more timeline rows")
                self._sampler_error = err
                return
            due = max(due + period, time.perf_counter())
            self._stop.wait(due - time.perf_counter())

    def _sample_once(self) -> None:
        with self._lock:
            t, readings = self._read_locked()
            prev_t = self._sample_times[-1] if self._sample_times else None
            prev = self._samples[-1] if self._samples else {}
            for d, r in readings.items():
                power, util, p = r.power_w, r.utilization_pct, prev.get(d)
                if p is not None and t > prev_t:  # counters give rates between consecutive samples
                    if power is None and r.energy_j is not None and p.energy_j is not None:
                        power = (r.energy_j - p.energy_j) / (t - prev_t)
                    if util is None and r.busy_s is not None and p.busy_s is not None:
                        util = 100.0 * (r.busy_s - p.busy_s) / (t - prev_t)
                self._rows.append((t, d, power, util, r.memory_bytes))
            self._sample_times.append(t)
            self._samples.append(readings)
            self._prune_locked()

    def timeline(self) -> pd.DataFrame:
        """Every sampled row so far; power and utilisation from counters are rates since the previous sample.

        Empty unless the sampler ran; times are on the Monitor's clock (see started_unix for wall time).
        """
        with self._lock:
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
        return frame.astype({"power_w": float, "utilization_pct": float, "memory_bytes": "Int64"})

    # ---- lifecycle --------------------------------------------------------------------------------
    def describe(self) -> dict:
        """The backend, its devices and the sampler's state as JSON-able facts for a run's metadata."""
        b = self.backend
        return {
            "backend": b.name,
            "devices": list(b.devices),
            "started_unix": self.started_unix,
            "sample_hz": self.sample_hz,
            "sampler_running": self._thread is not None,
            "energy_source": dict(b.energy_source),
            "energy_missing_reason": b.energy_missing_reason,
            "fallback_reason": self.fallback_reason,
            "open_windows": sorted(self._windows),
            "buffered_samples": len(self._samples),
            **b.describe(),
        }

    def close(self) -> None:
        """Stop the sampler and release the backend; a second call does nothing.

        Raises RuntimeError if the sampler had died on an error, as its energies would have a gap.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_sampler()
        finally:
            self.backend.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
