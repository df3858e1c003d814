"""Vendor spec sheets of the accelerators the papers ran on or that we may run on.

    python -m common.hardware.table     # the sheets as a table, with this host's measured profile

Peak FLOP/s are DENSE tensor-core numbers (NVIDIA's datasheets print sparse ones with an asterisk;
dense is half of those); fp32 is the non-tensor FP32 rate. Memory sizes are the nominal "GB" of the
datasheet taken as GiB, which is what nvidia-smi shows up to the ECC/driver reserve (MareNostrum 5's
"64 GB" H100 reports 65247 MiB). Roofline models divide these to get ridge points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

GiB = 2**30
T = 1e12
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")


@dataclass
class DeviceSpec:
    """A device's roofline numbers, from a datasheet or this host's probe.

    peak_flops are dense FLOP/s per dtype (a dtype the device lacks is absent), mem_bandwidth is B/s and
    mem_bytes is bytes; measured holds the probe's metadata and is None for datasheets.
    """

    name: str
    peak_flops: dict[str, float]  # dtype -> dense FLOP/s
    mem_bandwidth: float  # B/s
    mem_bytes: int
    source: str  # where each number comes from (datasheet, or the probe that measured it)
    measured: dict | None = field(default=None)  # probe metadata: host, threads, timings; None for datasheets

    def ridge_point(self, dtype: str = "bf16") -> float:
        """FLOP per byte moved at which a kernel stops being memory-bound."""
        if dtype not in self.peak_flops:
            raise KeyError(f"{self.name} has no {dtype} peak; it has {', '.join(self.peak_flops)}")
        return self.peak_flops[dtype] / self.mem_bandwidth

    def to_dict(self) -> dict:
        """Plain JSON-able fields, as save_profile writes and results record."""
        return asdict(self)


def hbm_bandwidth(mem_clock_hz: float, bus_width_bits: int) -> float:
    """Peak HBM bandwidth: double data rate on every bit of the bus. Reproduces the datasheets,
    e.g. A100 80GB: 1593 MHz x 2 x 5120 bit / 8 = 2.039 TB/s."""
    return mem_clock_hz * 2 * bus_width_bits / 8


# GH100 SXM5, dense: H100 whitepaper (NVIDIA, 2022, "NVIDIA H100 Tensor Core GPU Architecture",
# H100 SXM5 column); the H100 SXM datasheet's sparse figures (1979 bf16, 989 tf32, 3958 fp8) halved agree.
_GH100_SXM = {"fp32": 66.9 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp16": 989.4 * T, "fp8": 1978.9 * T}
# GA100: A100 datasheet (NVIDIA, 2021), the same for 40 GB and 80 GB; no fp8 units.
_GA100 = {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T}

# MN5's part: 4 HBM2e stacks of 16 GB -> 4096-bit bus (the 5-stack 80 GB HBM2e parts have 5120 bit)
H100_64GB_MEM_CLOCK_HZ = 1593e6  # nvidia-smi dmon on MareNostrum 5 (data/mindgap README, "Hardware")
H100_64GB_BUS_BITS = 4 * 1024

SPECS: dict[str, DeviceSpec] = {
    "h100-sxm-80gb": DeviceSpec(
        "NVIDIA H100 SXM5 80GB HBM3",
        dict(_GH100_SXM),
        3.35 * T,
        80 * GiB,
        "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: 80 GB, 3.35 TB/s) and H100 architecture "
        "whitepaper (2022) for dense FLOP/s",
    ),
    "h100-64gb": DeviceSpec(
        "NVIDIA H100 64GB HBM2e (MareNostrum 5 accelerated partition)",
        dict(_GH100_SXM),
        hbm_bandwidth(H100_64GB_MEM_CLOCK_HZ, H100_64GB_BUS_BITS),
        64 * GiB,
        "No NVIDIA datasheet for this part. Compute: H100 SXM5 numbers (same GH100 die; the node runs "
        "the SM clock at 1980 MHz throughout, the H100 SXM5's max SM clock). Bandwidth INFERRED, not "
        "published: nvidia-smi shows a 1593 MHz HBM2e memory clock and 65247 MiB; 64 GB = 4 stacks "
        "x 16 GB -> 4096-bit bus; 1593 MHz x 2 (DDR) x 4096 bit / 8 = 1.63 TB/s (the same rule gives "
        "the A100 80GB's datasheet 2.039 TB/s from 1593 MHz x 5120 bit)",
    ),
    "h200": DeviceSpec(
        "NVIDIA H200 SXM 141GB HBM3e",
        dict(_GH100_SXM),
        4.8 * T,
        141 * GiB,
        "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM: 141 GB, 4.8 TB/s; FP8 3958, BF16/FP16 "
        "1979, TF32 989 TFLOPS with sparsity, halved for dense; FP32 67)",
    ),
    "a100-40gb": DeviceSpec(
        "NVIDIA A100 SXM4 40GB HBM2",
        dict(_GA100),
        1.555 * T,
        40 * GiB,
        "NVIDIA A100 Tensor Core GPU datasheet (40 GB HBM2, 1,555 GB/s; BF16/FP16 312, TF32 156 "
        "TFLOPS dense; FP32 19.5)",
    ),
    "a100-80gb": DeviceSpec(
        "NVIDIA A100 SXM4 80GB HBM2e",
        dict(_GA100),
        2.039 * T,
        80 * GiB,
        "NVIDIA A100 Tensor Core GPU datasheet (80 GB HBM2e SXM, 2,039 GB/s; BF16/FP16 312, TF32 "
        "156 TFLOPS dense; FP32 19.5)",
    ),
    "l4": DeviceSpec(
        "NVIDIA L4 24GB GDDR6",
        {"fp32": 30.3 * T, "tf32": 60 * T, "bf16": 121 * T, "fp16": 121 * T, "fp8": 242.5 * T},
        300e9,
        24 * GiB,
        "NVIDIA L4 Tensor Core GPU datasheet (24 GB GDDR6, 300 GB/s; FP8 485, BF16/FP16 242, TF32 "
        "120 TFLOPS with sparsity, halved for dense; FP32 30.3)",
    ),
}

# device name as torch or NVML reports it -> SPECS key; the first match wins. PCIe and NVL H100s have
# other memory systems and no sheet here (None): better no roofline than the wrong one.
SPEC_BY_NAME = (
    ("H100 80GB HBM3", "h100-sxm-80gb"),
    ("H100 PCIe", None),
    ("H100 NVL", None),
    ("H100", "h100-64gb"),
    ("H200", "h200"),
    ("A100-SXM4-80GB", "a100-80gb"),
    ("A100", "a100-40gb"),
    ("L4", "l4"),
)


def spec_for_device(device_name: str) -> tuple[str | None, DeviceSpec | None]:
    """(SPECS key, sheet) of a GPU by its reported name, or (None, None) where no sheet matches."""
    for needle, key in SPEC_BY_NAME:
        if needle.lower() in device_name.lower():
            return (key, SPECS[key]) if key else (None, None)
    return None, None
