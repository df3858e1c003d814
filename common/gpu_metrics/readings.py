"""What every backend hands the Monitor: one `Reading` per device at one instant.

Backends only read their hardware; all window arithmetic (counter differences, power integration,
peaks, time-weighted utilisation) lives once in the Monitor, so the NVML, CPU and replay paths are
computed by the same code and a test of one checks the others' arithmetic too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Reading:
    """One device at one instant; a field a backend cannot read stays None.

    energy_j is a monotone cumulative counter (wrap-around already undone by the backend), so a window's
    energy is a difference of two reads. busy_s is cumulative busy time normalised to the device's
    capacity (1 s per second at full use), so utilisation follows from its differences where the
    hardware has no instantaneous utilisation (process CPU time). memory_peak_bytes is a high-water
    mark (VmHWM): if it rose during a window, the window's peak is exactly its end value.
    """

    energy_j: float | None = None
    power_w: float | None = None
    utilization_pct: float | None = None
    memory_bytes: int | None = None
    memory_peak_bytes: int | None = None
    busy_s: float | None = None


class Backend(Protocol):
    """The small surface a Monitor needs.

    A backend with a recorded trace also has `history(t0, t1) -> [(t, {device: Reading})]`, the points
    strictly inside a window, which the Monitor then uses instead of the sampler's.
    """

    name: str
    devices: list[str]
    energy_source: dict[str, str | None]  # device -> how its energy is obtained, None if it cannot be
    energy_missing_reason: str | None
    needs_sampler: bool  # windows are only right with the sampler running (power integration, wraps)
    time_origin: float  # the default clock starts here (the first time of a replayed trace)

    def read(self, t: float) -> dict[str, Reading]:
        """Every device's Reading now; t is the Monitor's clock, which only the replay backend reads from."""

    def sync(self) -> None:
        """Wait for asynchronous device work, so a window edge comes after the work launched before it."""

    def describe(self) -> dict:
        """JSON-able facts about the hardware for a run's metadata."""

    def close(self) -> None:
        """Release the hardware; the Monitor calls it once, on close."""


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why (auto mode falls back on it)."""
