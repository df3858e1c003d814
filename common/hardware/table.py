"""`python -m common.hardware.table`: the vendor spec sheets as one table, with this host's measured
profile (the "local" sheet) where `python -m common.hardware.probe` saved one."""

from __future__ import annotations

from dataclasses import dataclass

from common.app import entrypoint
from common.hardware.specs import DTYPES, SPECS
from common.schema import RunConfig, spec


def _fmt(value: float | None, scale: float, digits: int = 1) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def spec_table(specs: dict) -> str:
    """The sheets as a fixed-width table: dense FLOP/s per dtype, memory, ridge points."""
    head = (
        f"{'key':<15}"
        + "".join(f"{d + ' TF/s':>11}" for d in DTYPES)
        + f"{'mem TB/s':>10}{'mem GiB':>9}{'ridge bf16':>12}{'ridge fp32':>12}"
    )
    rows = [head, "-" * len(head)]
    for key, s in specs.items():
        ridge = {
            d: _fmt(s.peak_flops[d] / s.mem_bandwidth, 1, 0) if d in s.peak_flops else "-"
            for d in ("bf16", "fp32")
        }
        rows.append(
            f"{key:<15}"
            + "".join(f"{_fmt(s.peak_flops.get(d), 1e12):>11}" for d in DTYPES)
            + f"{_fmt(s.mem_bandwidth, 1e12, 3):>10}{_fmt(s.mem_bytes, 2**30, 0):>9}"
            f"{ridge['bf16']:>12}{ridge['fp32']:>12}"
        )
    return "\n".join(rows) + "\n(dense FLOP/s; ridge = FLOP per byte of memory traffic)"


@dataclass
class TableConfig(RunConfig):
    """conf/common/hardware/table.yaml: where this host's measured profile is looked for."""

    profile_dir: str = spec(free="a directory: where the probe saved this host's profile")


@entrypoint("common/hardware/table", schema=TableConfig)
def main(cfg, run):
    """Print the spec sheets, and this host's profile where `python -m common.hardware.probe` saved one."""
    from common.hardware import get_spec

    specs = dict(SPECS)
    try:
        specs["local"] = get_spec("local", cfg.profile_dir)
    except FileNotFoundError:
        pass
    print(spec_table(specs), flush=True)
    return sorted(specs)


if __name__ == "__main__":
    main()
