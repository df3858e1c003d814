"""The Batching Configuration Advisor as a command: which batch cap and how much GPU memory to give vLLM.

    # a sweep: this project's results.jsonl, or a CSV in the authors' layout
    python -m papers.batching.advise papers/batching/reference/advisor_sweep.csv --model opt-1.3b \\
        --output-len 260 --server-memory papers/batching/reference/server_memory.csv \\
        --server-memory-sweep advisor --json advisor.json
    python -m papers.batching.advise results/batching/sweep/smoke/results.jsonl --device-mem-gib 24
    # every model x output length of the authors' H100 advisor sweep, as one table
    python -m papers.batching.advise --all-authors [--markdown advisor.md]
    # the authors' own BCA settings (their Fig. 10 and Fig. 12 scripts), one JSON object per curve
    python -m papers.batching.advise --preset paper-fig12 --json
    # no sweep: the roofline's prediction for a model on a device
    python -m papers.batching.advise analytic --model llama-2-7b --device h100-sxm-80gb \\
        --prompt 161 --output 338

The flags are generated from the settings dataclasses of papers/batching/advisor.py (SweepSettings,
AnalyticSettings), the same ones the `bca` experiment composes in conf/batching/bca.yaml, so a setting
has one name, type, default and check for both. The rule, the memory arithmetic and the reading of a
sweep are advisor.py's; this module parses the flags and prints the answer (a rich table, JSON with
--json FILE, markdown with --markdown; `--json` alone prints one JSON object per curve instead of the
tables). Bad input (a missing file or column, duplicate runs, a negative latency, KV usage above 100 %,
epsilon outside [0, 1), an SLO no batch meets, no batch-1 run when epsilon > 0) prints one line naming it
and exits with status 2; B_opt needs no memory input (without one the plan is left out, saying why); with
several curves in one sweep, each curve that fails is reported in the table and the command fails only
if every curve does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from common.atomic import write_atomic
from common.cli import add_arguments, from_namespace
from common.errors import EXIT_BAD_INPUT, BadInput
from papers.batching.advisor import AnalyticSettings, SweepSettings

log = logging.getLogger(__name__)
GROUPS = ("input", "which curve", "columns", "model", "rule", "memory")
STDOUT = Path("-")


# ---- output ------------------------------------------------------------------------------------
SUMMARY = [
    ("curve", "label", "{}"),
    ("B_opt", "b_opt", "{:g}"),
    ("cap", "b_opt_cap", "{:g}"),
    ("T (tok/s)", "throughput", "{:.0f}"),
    ("of best", "fraction_of_best", "{:.1%}"),
    ("latency ms", "latency_ms", "{:.2f}"),
    ("SLO ms", "slo_ms", "{:.2f}"),
    ("KV GiB", "kv_gib", "{:.2f}"),
    ("alloc GiB", "footprint_gib", "{:.2f}"),
    ("gpu_mem_util", "gpu_memory_utilization", "{:.3f}"),
    ("freed GiB", "freed_gib", "{:.2f}"),
    ("freed %", "freed_pct", "{:.1f}"),
    ("replicas", "replicas", "{}"),
]


def _summary_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "error"] + ["-"] * (len(SUMMARY) - 2))
            continue
        flat = {**r, **(r.get("memory") or {})}
        cells = [fmt.format(flat[key]) if flat.get(key) is not None else "-" for _, key, fmt in SUMMARY]
        if r.get("preempted"):
            cells[1] += " (preempted)"
        rows.append(cells)
    return rows


def print_results(results: list[dict], settings: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: wide enough for the table, not the 80-column default
        console = Console(width=200)
    if len(results) == 1 and "error" not in results[0]:
        r = results[0]
        t = Table(title=f"{r['label']}: every point")
        for name in ("batch", "cap", "T (tok/s)", "latency ms", "T/(B T(1))", "KV GiB", "SLO", "> eps", ""):
            t.add_column(name, justify="right")
        for p in r["points"]:
            t.add_row(
                f"{p['batch']:g}",
                f"{p['cap']:g}",
                f"{p['throughput']:.1f}",
                f"{p['latency_ms']:.2f}",
                "-" if p["efficiency"] is None else f"{p['efficiency']:.3f}",
                "-" if p["kv_gib"] is None else f"{p['kv_gib']:.2f}",
                "ok" if p["meets_slo"] else "no",
                "ok" if p["efficient"] else "no",
                "B_opt" if p["chosen"] else "",
            )
        console.print(t)
    t = Table(title="Batching Configuration Advisor")
    for name, _, _ in SUMMARY:
        t.add_column(name, justify="left" if name == "curve" else "right")
    for row in _summary_rows(results):
        t.add_row(*row)
    console.print(t)
    console.print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    for r in results:
        if "error" in r:
            console.print(f"[bold red]{r['label']}[/]: {r['error']}")
        elif r.get("memory") is None:
            console.print(
                f"[bold]{r['label']}[/]: {r['cap_column']}={r['b_opt_cap']:g}; no memory plan "
                f"({r.get('memory_missing')})"
            )
        else:
            m = r["memory"]
            console.print(
                f"[bold]{r['label']}[/]: {r['cap_column']}={r['b_opt_cap']:g}, "
                f"gpu_memory_utilization={m['gpu_memory_utilization']:.3f} (KV {m['kv_source']}; "
                f"overhead {m['overhead_gib']:.2f} GiB from {m['overhead_source']})"
            )


def markdown_table(results: list[dict]) -> str:
    head = [name for name, _, _ in SUMMARY]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in _summary_rows(results)]
    lines += [""] + [f"- {r['label']}: {r['error']}" for r in results if "error" in r]
    lines += [
        f"- {r['label']}: no memory plan ({r['memory_missing']})"
        for r in results
        if "error" not in r and r.get("memory") is None and r.get("memory_missing")
    ]
    return "\n".join(lines).rstrip() + "\n"


# ---- command line ------------------------------------------------------------------------------
def _outputs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=STDOUT,
        metavar="OUT.json",
        help="with a file: write the full result (every point, the settings) there; alone: print "
        "one JSON object per curve (model, output_len, b_opt, cap, freed_gib, freed_pct, ...) "
        "instead of the tables",
    )
    g.add_argument("--markdown", type=Path, help="write the summary table here as markdown")


def sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m papers.batching.advise",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p, SweepSettings, group_order=GROUPS)
    _outputs(p)
    return p


def analytic_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m papers.batching.advise analytic",
        description="B_opt and memory from the roofline model alone (no sweep)",
    )
    add_arguments(p, AnalyticSettings, group_order=GROUPS)
    _outputs(p)
    return p


def parse(argv: list[str]) -> tuple[SweepSettings | AnalyticSettings, argparse.Namespace]:
    """The settings the command line gives (checked by their dataclass), and the parsed arguments."""
    if argv and argv[0] == "analytic":
        args = analytic_parser().parse_args(argv[1:])
        return from_namespace(AnalyticSettings, args), args
    args = sweep_parser().parse_args(argv)
    return from_namespace(SweepSettings, args), args


def run(argv: list[str]) -> tuple[list[dict], dict, argparse.Namespace]:
    """Parse, advise; returns (results, settings record, args). Raises BadInput on bad input."""
    from papers.batching import advisor

    settings, args = parse(argv)
    if isinstance(settings, AnalyticSettings):
        results, record = advisor.advise_analytic(settings)
    else:
        results, record = advisor.advise_sweep(settings)
    return results, record, args


def main(argv: list[str] | None = None) -> int:
    from common.logging import setup_logging

    setup_logging(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    try:
        results, settings, args = run(argv)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from papers.batching.advisor import curve_summary

    if args.json == STDOUT:
        for r in results:
            print(json.dumps(curve_summary(r)))
    else:
        print_results(results, settings)
    if args.json and args.json != STDOUT:
        write_atomic(args.json, json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    if args.markdown:
        write_atomic(args.markdown, markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
