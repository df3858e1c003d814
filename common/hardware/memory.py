"""How much memory the device a run serves on has: a GPU's (torch's view of it) or this host's RAM.

On a CPU "the device" is the host, so its memory is physical RAM. Both serving papers divide measured
peaks and KV caches by this number; they read it here so the two cannot disagree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceMemory:
    """What a run's peaks are divided by: total bytes, the device's name and where the number comes from."""

    total_bytes: int
    name: str  # the GPU's name, or "host RAM"
    source: str  # where the number comes from


def host_memory_bytes() -> int:
    """Physical memory of this host (sysconf): the 'device memory' of a CPU run."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_memory(device: str) -> DeviceMemory:
    """The memory of `device` ("cuda": GPU 0 as torch sees it; anything else: this host's RAM)."""
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return DeviceMemory(int(props.total_memory), props.name, f"torch.cuda total_memory of {props.name}")
    return DeviceMemory(host_memory_bytes(), "host RAM", "physical RAM (sysconf)")
