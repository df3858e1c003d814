"""`python -m common.hardware list` prints the spec sheets; `... probe` measures and saves this host."""

from __future__ import annotations

import argparse
import sys

from common.errors import EXIT_BAD_INPUT, BadInput


def _fmt(value: float | None, scale: float, digits: int = 1) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def spec_table(specs: dict) -> str:
    from common.hardware.specs import DTYPES

    head = f"{'key':<15}" + "".join(f"{d + ' TF/s':>11}" for d in DTYPES) + \
        f"{'mem TB/s':>10}{'mem GiB':>9}{'ridge bf16':>12}{'ridge fp32':>12}"
    rows = [head, "-" * len(head)]
    for key, s in specs.items():
        ridge = {d: _fmt(s.peak_flops[d] / s.mem_bandwidth, 1, 0) if d in s.peak_flops else "-"
                 for d in ("bf16", "fp32")}
        rows.append(f"{key:<15}" + "".join(f"{_fmt(s.peak_flops.get(d), 1e12):>11}" for d in DTYPES)
                    + f"{_fmt(s.mem_bandwidth, 1e12, 3):>10}{_fmt(s.mem_bytes, 2**30, 0):>9}"
                    f"{ridge['bf16']:>12}{ridge['fp32']:>12}")
    return "\n".join(rows) + "\n(dense FLOP/s; ridge = FLOP per byte of memory traffic)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m common.hardware", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the spec sheets (and this host's profile if measured)")
    p = sub.add_parser("probe", help="measure copy bandwidth and matmul FLOP/s; save the profile")
    p.add_argument("--out", help="JSON path (default results/hardware/<hostname>.json)")
    p.add_argument("--threads", type=_positive, help="torch threads (default: torch's current count)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--mem-mib", type=_positive, help="copy array size (default 256 on CPU, 2048 on CUDA)")
    p.add_argument("--size", type=_positive, help="matmul size (default 2048 on CPU, 8192 on CUDA)")
    p.add_argument("--repeats", type=_positive, default=10, help="best of this many timed repeats")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)  # argparse exits 2 on bad arguments
    from common import hardware

    if args.command == "list":
        specs = dict(hardware.SPECS)
        try:
            specs["local"] = hardware.get_spec("local")
        except FileNotFoundError:
            pass
        print(spec_table(specs))
        return 0
    try:
        spec = hardware.probe(device=args.device, threads=args.threads, mem_mib=args.mem_mib,
                              matmul_size=args.size, repeats=args.repeats,
                              progress=lambda msg: print(f"probe: {msg}", flush=True))
        path = hardware.save_profile(spec, args.out)
    except (ValueError, OSError) as e:  # cuda asked for but absent, unwritable --out
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    m = spec.measured
    print(f"\n{spec.name}: torch {m['torch']}, {m['torch_threads']} threads, "
          f"load average {m['load_avg_1m_at_start']:.2f} at start")
    print(f"  copy bandwidth: {spec.mem_bandwidth / 1e9:.2f} GB/s (read + write)")
    for dtype, flops in spec.peak_flops.items():
        print(f"  matmul {dtype}: {flops / 1e9:.1f} GFLOP/s; ridge {spec.ridge_point(dtype):.1f} FLOP/B")
    for dtype, why in m["missing"].items():
        print(f"  {dtype}: missing ({why})")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
