"""NVML backend: GPU energy, power, utilisation and memory through nvidia-ml-py (`pynvml`).

Energy comes from the device's total-energy counter (mJ since driver load, Volta and newer) where it
answers, else from sampled power integrated over the window, which is coarser: on many boards
nvmlDeviceGetPowerUsage is a ~1 s running average. Memory is NVML's device-wide "used" (every process
and the caching allocator's reserve: what the device really held). pynvml is imported lazily so that
nothing fails on machines without the NVIDIA driver.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from common.gpu_metrics.readings import BackendUnavailable, Reading

log = logging.getLogger(__name__)


def _import_pynvml():
    try:
        import pynvml
    except ImportError as err:
        raise BackendUnavailable("pynvml (the nvidia-ml-py package) is not installed") from err
    return pynvml


def visible_nvml_indices(nvml) -> list[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES shows, in CUDA's order (integers or GPU- UUIDs).

    As in CUDA, an entry that names no GPU hides it and every entry after it. Integers are taken as
    NVML (PCI bus) order, which is CUDA's order with CUDA_DEVICE_ORDER=PCI_BUS_ID and on nodes of one
    GPU model; use UUIDs to be exact on mixed nodes.
    """
    count = nvml.nvmlDeviceGetCount()
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return list(range(count))
    uuids: list[str] | None = None
    chosen: list[int] = []
    for entry in (e.strip() for e in spec.split(",")):
        index = None
        if entry.startswith("MIG-"):
            raise BackendUnavailable(
                f"CUDA_VISIBLE_DEVICES={spec!r} names a MIG instance; NVML reports "
                "energy per physical GPU only, so list whole GPUs to measure"
            )
        if re.fullmatch(r"\d+", entry) and int(entry) < count:
            index = int(entry)
        elif entry.startswith("GPU-"):
            if uuids is None:
                uuids = [nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
            matches = [i for i, uuid in enumerate(uuids) if uuid.startswith(entry)]
            index = matches[0] if len(matches) == 1 else None
        if index is None or index in chosen:
            if entry:
                log.warning(
                    "CUDA_VISIBLE_DEVICES=%r: %r names no (new) GPU; it and later entries are hidden",
                    spec,
                    entry,
                )
            break
        chosen.append(index)
    return chosen


class NVMLBackend:
    """Visible GPUs through NVML, labelled cuda:i as torch numbers them.

    Raises BackendUnavailable when pynvml, the driver or a visible GPU is missing (auto mode then falls back
    to the CPU), ValueError for a device index outside the visible GPUs.
    """

    name = "nvml"
    time_origin = 0.0
    energy_missing_reason = None

    def __init__(self, devices: list[int] | None = None):
        """devices: indices among the visible GPUs (torch's cuda:i), None for all of them."""
        nvml = self.nvml = _import_pynvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as err:
            raise BackendUnavailable(f"NVML cannot initialise ({err})") from err
        try:
            self._open(devices)
        except BaseException:
            nvml.nvmlShutdown()
            raise

    def _open(self, devices: list[int] | None) -> None:
        nvml = self.nvml
        try:
            visible = visible_nvml_indices(nvml)
            if not visible:
                raise BackendUnavailable(
                    f"no GPU visible (NVML sees {nvml.nvmlDeviceGetCount()}, "
                    f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
                )
            chosen = list(range(len(visible))) if devices is None else [int(d) for d in devices]
            bad = [d for d in chosen if not 0 <= d < len(visible)]
            if bad or not chosen:
                raise ValueError(
                    f"devices={devices!r}: choose among the {len(visible)} visible GPUs 0..{len(visible) - 1}"
                )
            self.handles, self.info, self.energy_source = {}, {}, {}
            for cuda_index in chosen:
                label = f"cuda:{cuda_index}"
                handle = self.handles[label] = nvml.nvmlDeviceGetHandleByIndex(visible[cuda_index])
                counter = self._call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
                self.energy_source[label] = (
                    "nvml_energy_counter" if counter is not None else "nvml_power_integration"
                )
                self.info[label] = {
                    "nvml_index": visible[cuda_index],
                    "name": nvml.nvmlDeviceGetName(handle),
                    "uuid": nvml.nvmlDeviceGetUUID(handle),
                    "energy_source": self.energy_source[label],
                }
        except nvml.NVMLError as err:
            raise BackendUnavailable(f"NVML failed while listing GPUs ({err})") from err
        self.devices = list(self.handles)
        self.needs_sampler = "nvml_power_integration" in self.energy_source.values()

    def _call(self, fn, handle):
        """One NVML query; a query the device or driver does not support reads as None, never a crash."""
        try:
            return fn(handle)
        except self.nvml.NVMLError as err:
            log.debug("%s failed: %s", fn.__name__, err)
            return None

    def read(self, t: float) -> dict[str, Reading]:
        """One Reading per GPU (J, W, %, device-wide used bytes); a query the board lacks reads as None."""
        nvml = self.nvml
        out = {}
        for label, handle in self.handles.items():
            energy_mj = (
                self._call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
                if self.energy_source[label] == "nvml_energy_counter"
                else None
            )
            power_mw = self._call(nvml.nvmlDeviceGetPowerUsage, handle)
            util = self._call(nvml.nvmlDeviceGetUtilizationRates, handle)
            memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
            out[label] = Reading(
                energy_j=None if energy_mj is None else energy_mj / 1e3,
                power_w=None if power_mw is None else power_mw / 1e3,
                utilization_pct=None if util is None else float(util.gpu),
                memory_bytes=None if memory is None else int(memory.used),
            )
        return out

    def sync(self) -> None:
        """Wait for queued kernels, so a window holds the GPU work launched inside it (if torch uses CUDA)."""
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            for label in self.handles:
                torch.cuda.synchronize(int(label.split(":")[1]))

    def describe(self) -> dict:
        """Each GPU's NVML index, name, UUID, energy source and CUDA_VISIBLE_DEVICES, for a run's metadata."""
        return {"gpus": self.info, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def close(self) -> None:
        """Shut NVML down; a failure is only logged, as nothing is left to measure."""
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError as err:
            log.debug("nvmlShutdown failed: %s", err)
