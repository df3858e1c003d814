"""Time, energy, power, memory and utilisation of code regions, on GPUs (NVML), CPUs (RAPL) or a trace.

    with Monitor() as mon:              # "auto": NVML where it initialises, else the CPU
        mon.begin_window("decode")
        ...
        m = mon.end_window("decode")    # m.total_energy_j, or None and m.energy_missing_reason

Own NVML code rather than Zeus (ML.ENERGY): Zeus pulls pydantic, tyro, httpx and amdsmi and hides pynvml
behind its device layer, while ours must be mocked on CPU-only CI, read UUIDs in CUDA_VISIBLE_DEVICES
and report memory and utilisation too. Its design is followed: counters where present, else power.
"""

from common.gpu_metrics.cpu import CPUBackend
from common.gpu_metrics.monitor import TIMELINE_COLUMNS, Measurement, Monitor
from common.gpu_metrics.nvml import NVMLBackend
from common.gpu_metrics.readings import Backend, BackendUnavailable, Reading
from common.gpu_metrics.replay import ReplayBackend

__all__ = [
    "Backend",
    "BackendUnavailable",
    "CPUBackend",
    "Measurement",
    "Monitor",
    "NVMLBackend",
    "Reading",
    "ReplayBackend",
    "TIMELINE_COLUMNS",
]
