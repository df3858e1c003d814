"""Measure this machine's roofline: STREAM-like copy bandwidth and best-case matmul FLOP/s.

Both are best-of-repeats of large kernels (the copy arrays far exceed any cache), so they bound what
real kernels can reach here, the way vendor peaks bound them on a GPU. They are measurements on a
possibly shared machine: the load average at the start is recorded with them. The profile is saved as
<profile_dir>/<hostname>.json, where `get_spec("local", profile_dir)` (the roofline of "this device")
finds it.

    python -m common.hardware.probe [threads=2] [device=cuda] [mem_mib=256] [size=2048] [repeats=10]
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from common.app import entrypoint
from common.errors import BadInput
from common.hardware.specs import DeviceSpec
from common.runinfo import cpu_model
from common.schema import RunConfig, spec

log = logging.getLogger(__name__)

CPU_DTYPES = ("fp32", "bf16")
CUDA_DTYPES = ("fp32", "tf32", "bf16", "fp16")  # fp8 needs scaled matmuls: not probed, see "missing"
MIN_TIMED_S = 1e-3  # a timed unit repeats a kernel until it lasts this long (timer and launch overhead)


def _timer(device: str) -> Callable[[], float]:
    import torch

    if device == "cuda":
        return lambda: (torch.cuda.synchronize(), time.perf_counter())[1]
    return time.perf_counter


def best_time(fn: Callable[[], object], device: str, repeats: int, min_timed_s: float = MIN_TIMED_S) -> dict:
    """Seconds per call of fn, best of `repeats` (STREAM's rule): the fastest trial is the one least
    disturbed by other processes, which matters on a shared machine. Units are kept short on purpose;
    only kernels under min_timed_s are batched so the timer resolves them."""
    now = _timer(device)
    fn()  # warm-up: allocation, page faults, library initialisation
    t0 = now()
    fn()
    first = now() - t0
    inner = max(1, math.ceil(min_timed_s / max(first, 1e-9)))
    times = []
    for _ in range(repeats):
        t0 = now()
        for _ in range(inner):
            fn()
        times.append((now() - t0) / inner)
    return {"best_s": min(times), "times_s": times, "inner": inner}


def copy_bandwidth(device: str, nbytes: int, repeats: int) -> dict:
    """dst.copy_(src) on float32 tensors of nbytes each; counts one read and one write per byte."""
    import torch

    n = max(1, nbytes // 4)
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.zeros_like(src)  # zeros, not empty: the pages are touched before timing
    t = best_time(lambda: dst.copy_(src), device, repeats)
    if not torch.equal(dst, src):
        raise RuntimeError("copy probe produced a wrong result")
    return {**t, "bytes_per_copy": 2 * n * 4, "bandwidth": 2 * n * 4 / t["best_s"]}


def matmul_flops(device: str, dtype: str, size: int, repeats: int) -> dict:
    """size x size @ size x size (2 size^3 FLOP). tf32 is fp32 with TF32 tensor cores allowed."""
    import torch

    torch_dtype = {
        "fp32": torch.float32,
        "tf32": torch.float32,
        "bf16": torch.bfloat16,
        "fp16": torch.float16,
    }[dtype]
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=device).to(torch_dtype)
    b = torch.randn(size, size, generator=gen, device=device).to(torch_dtype)
    out = torch.empty(size, size, dtype=torch_dtype, device=device)
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    try:
        t = best_time(lambda: torch.matmul(a, b, out=out), device, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return {**t, "size": size, "flops": 2 * size**3 / t["best_s"]}


def _cpu_flags() -> list[str]:
    """The CPU features that decide whether bf16/fp16 matmuls run natively (else they are emulated)."""
    wanted = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "amx_tile"}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def probe(
    device: str | None = None,
    threads: int | None = None,
    mem_mib: int | None = None,
    matmul_size: int | None = None,
    repeats: int = 10,
    dtypes: tuple[str, ...] | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> DeviceSpec:
    """This machine as a DeviceSpec of measured numbers, with how they were measured in .measured."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but torch.cuda.is_available() is False")
    dtypes = dtypes or (CUDA_DTYPES if device == "cuda" else CPU_DTYPES)
    sizes = [v for v in (mem_mib, repeats, matmul_size) if v is not None]
    if set(dtypes) - {"fp32", "tf32", "bf16", "fp16"} or min(sizes) < 1:
        raise ValueError(
            f"bad probe arguments: dtypes={dtypes}, mem_mib={mem_mib}, repeats={repeats}, "
            f"matmul_size={matmul_size}"
        )
    size = matmul_size or (8192 if device == "cuda" else 2048)
    mem_mib = mem_mib or (2048 if device == "cuda" else 256)  # GPU copies must outlast launch overhead
    caller_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(device, dtypes, size, mem_mib, repeats, progress)
    finally:
        torch.set_num_threads(caller_threads)  # the caller's process keeps its own setting


def _measure(device: str, dtypes, size: int, mem_mib: int, repeats: int, progress) -> DeviceSpec:
    import torch

    host = socket.gethostname()
    meta = {
        "host": host,
        "device": device,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_avg_1m_at_start": os.getloadavg()[0],
        "repeats": repeats,
        "missing": {},
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name, mem_bytes = props.name, int(props.total_memory)
        meta["gpu"] = props.name
        meta["missing"]["fp8"] = "not probed: fp8 matmuls need torch._scaled_mm with scales"
    else:
        name = f"{meta['cpu']} ({host})"
        mem_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    progress(
        f"copy bandwidth on {device}: 2 x {mem_mib} MiB float32, best of {repeats}, "
        f"{meta['torch_threads']} torch threads"
    )
    meta["copy"] = copy_bandwidth(device, mem_mib * 2**20, repeats)
    peak, meta["matmul"] = {}, {}
    for dtype in dtypes:
        progress(f"matmul {dtype} {size}x{size} on {device}, best of {repeats}")
        try:
            meta["matmul"][dtype] = matmul_flops(device, dtype, size, repeats)
        except RuntimeError as e:  # a dtype this build/device lacks
            meta["missing"][dtype] = f"{type(e).__name__}: {e}"
            continue
        peak[dtype] = meta["matmul"][dtype]["flops"]
    source = (
        f"measured by `python -m common.hardware.probe` on {host} ({device}) at {meta['date']}: "
        f"best of {repeats}, copy of {mem_mib} MiB, matmul {size}^3, {meta['torch_threads']} threads"
    )
    return DeviceSpec(name, peak, meta["copy"]["bandwidth"], int(mem_bytes), source, meta)


@dataclass
class ProbeConfig(RunConfig):
    """conf/common/hardware/probe.yaml: what to measure, and where the profile goes."""

    profile_dir: str = spec(free="a directory: where get_spec('local') looks (${paths.results_dir}/hardware)")
    out: Optional[str] = spec(None, free="the profile's path; None: <profile_dir>/<hostname>.json")
    device: Optional[str] = spec(None, choices=("cpu", "cuda"))  # None: cuda where available
    threads: Optional[int] = spec(None, ge=1)  # torch threads while measuring; None: torch_threads
    mem_mib: Optional[int] = spec(None, ge=1)  # copy array size; None: 256 on a CPU, 2048 on a GPU
    size: Optional[int] = spec(None, ge=1)  # matmul size; None: 2048 on a CPU, 8192 on a GPU
    repeats: int = spec(10, ge=1)  # best of this many timed repeats


@entrypoint("common/hardware/probe", schema=ProbeConfig)
def main(cfg, run):
    """Measure this host and save the profile get_spec("local") reads; returns its path.

    BadInput when cuda is asked for and there is none.
    """
    from common import hardware

    try:
        spec = probe(
            device=cfg.device,
            threads=cfg.threads,
            mem_mib=cfg.mem_mib,
            matmul_size=cfg.size,
            repeats=cfg.repeats,
            progress=lambda msg: log.info("probe: %s", msg),
        )
    except ValueError as err:  # cuda asked for but absent
        raise BadInput(f"device: {err}") from None
    path = hardware.save_profile(spec, cfg.out or hardware.profile_path(cfg.profile_dir))
    m = spec.measured
    log.info(
        "%s: torch %s, %d threads, load average %.2f at start",
        spec.name,
        m["torch"],
        m["torch_threads"],
        m["load_avg_1m_at_start"],
    )
    log.info("  copy bandwidth: %.2f GB/s (read + write)", spec.mem_bandwidth / 1e9)
    for dtype, flops in spec.peak_flops.items():
        log.info("  matmul %s: %.1f GFLOP/s; ridge %.1f FLOP/B", dtype, flops / 1e9, spec.ridge_point(dtype))
    for dtype, why in m["missing"].items():
        log.info("  %s: missing (%s)", dtype, why)
    log.info("saved %s", path)
    return str(path)


if __name__ == "__main__":
    main()
