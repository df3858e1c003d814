"""The Batching Configuration Advisor as a command: which batch cap and how much GPU memory to give vLLM.

    # a sweep: this project's results.jsonl, or a CSV in the authors' layout
    python -m papers.batching.advise papers/batching/reference/advisor_sweep.csv --model opt-1.3b \\
        --output-len 260 --server-memory papers/batching/reference/server_memory.csv \\
        --server-memory-sweep advisor --json advisor.json
    python -m papers.batching.advise results/batching/sweep/smoke/results.jsonl --device-mem-gib 24
    # every model x output length of the authors' H100 advisor sweep, as one table
    python -m papers.batching.advise --all-authors [--markdown advisor.md]
    # no sweep: the roofline's prediction for a model on a device
    python -m papers.batching.advise analytic --model llama-2-7b --device h100-sxm-80gb \\
        --prompt 161 --output 338

The rule and the memory arithmetic are in papers/batching/advisor.py; this module reads the inputs, picks the
columns, and prints the answer (a rich table, and JSON with --json). Bad input (a missing file or column,
epsilon outside [0, 1), an SLO no batch meets, no batch-1 run when epsilon > 0) prints one line naming
it and exits with status 2; with several curves in one sweep, each curve that fails is reported in the
table and the command fails only if every curve does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from common.atomic import write_atomic
from common.errors import BadInput
from papers.batching import advisor

log = logging.getLogger(__name__)
REFERENCE = Path(__file__).resolve().parent / "reference"
AUTHORS_SWEEP = REFERENCE / "advisor_sweep.csv"
AUTHORS_MEMORY = REFERENCE / "server_memory.csv"

# The settings every run uses unless told otherwise (BCA.md's table is made with them).
DEFAULT_LATENCY = "tpot"  # per-request decode pace: what a user waits per token
DEFAULT_SLO_FACTOR = 3.0  # x the latency at the batch nearest DEFAULT_REF_BATCH
DEFAULT_REF_BATCH = 32.0  # the authors' BCA script anchors its SLO at the batch nearest 32
DEFAULT_EPSILON = 0.1  # drop batches past 10% of linear scaling from batch 1
ANALYTIC_BATCHES = "1,2,4,8,16,32,64,128,256,512,1024"


@dataclass(frozen=True)
class Layout:
    """Where a sweep format keeps each quantity."""

    name: str
    group_cols: tuple[str, ...]  # one curve per distinct value of these (those present)
    cap: str
    running: str | None
    throughput: str
    latency: dict[str, str]
    kv_col: str
    kv_unit: str
    peak_batch: str | None
    preemptions: str | None
    input_tokens: str
    output_tokens: str
    requests: str


AUTHORS = Layout("authors", ("model", "output_len"), cap="max_num_seqs", running="mean_running_batch",
                 throughput="total_token_throughput_tok_s",
                 latency={"itl": "mean_itl_ms", "tpot": "mean_tpot_ms"},
                 kv_col="max_kv_cache_usage_pct", kv_unit="pct", peak_batch="max_running_batch",
                 preemptions="num_preemptions", input_tokens="total_input_tokens",
                 output_tokens="total_output_tokens", requests="num_prompts")
PROJECT = Layout("project", ("model", "workload", "engine", "engine_options", "dtype", "device"),
                 cap="batch_size", running=None, throughput="total_throughput_tok_s",
                 latency={"itl": "itl_ms_mean", "tpot": "tpot_ms_mean"}, kv_col="kv_cache_bytes",
                 kv_unit="bytes", peak_batch=None, preemptions=None, input_tokens="input_tokens",
                 output_tokens="output_tokens", requests="n_requests")


# ---- reading -----------------------------------------------------------------------------------
def read_sweep(path: Path) -> tuple[pd.DataFrame, Layout]:
    """A results.jsonl (failed cells kept, to be reported as skipped) or a CSV in the authors' layout."""
    if not path.is_file():
        raise BadInput(f"{path}: no such sweep file")
    if path.suffix == ".jsonl":
        from common.results import ResultStore, ResultStoreError

        try:
            frame = ResultStore(path).load(status=None)
        except ResultStoreError as err:
            raise BadInput(str(err)) from None
        if frame.empty:
            raise BadInput(f"{path}: the result store has no rows")
        return frame, PROJECT
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not a readable CSV ({err})") from None
    return frame, (PROJECT if "batch_size" in frame.columns and "max_num_seqs" not in frame.columns
                   else AUTHORS)


def read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    return pd.read_csv(path)


def _groups(frame: pd.DataFrame, layout: Layout, args) -> list[tuple[str, pd.DataFrame]]:
    for col, value in (("model", args.model), ("output_len", args.output_len), ("workload", args.workload)):
        if value is None:
            continue
        if col not in frame.columns:
            raise BadInput(f"{args.sweep}: --{col.replace('_', '-')} given but the sweep has no {col!r} "
                           "column")
        keep = frame[col].astype(str) == str(value)
        if not keep.any():
            raise BadInput(f"{args.sweep}: no rows with {col} = {value} (it has "
                           f"{', '.join(map(str, frame[col].drop_duplicates()))})")
        frame = frame[keep]
    cols = [c for c in layout.group_cols if c in frame.columns]
    if not cols:
        return [(Path(args.sweep).stem, frame)]
    return [(" ".join(str(v) for v in (key if isinstance(key, tuple) else (key,)) if str(v)), g)
            for key, g in frame.groupby(cols, sort=False)]


# ---- one curve ---------------------------------------------------------------------------------
def _column(choice: str, aliases: dict[str, str | None], what: str) -> str:
    col = aliases.get(choice, choice)
    if col is None:
        raise BadInput(f"--{what} {choice}: this sweep format has no such column")
    return col


def _mean_length(group: pd.DataFrame, layout: Layout, col: str) -> float | None:
    if col not in group.columns or layout.requests not in group.columns:
        return None
    per = pd.to_numeric(group[col], errors="coerce") / pd.to_numeric(group[layout.requests], errors="coerce")
    per = per.dropna()
    return float(per.median()) if len(per) else None


def _kv_per_token(model: str, dtype: str, given: int | None) -> int | None:
    """KV bytes per token from the model's config (common.serving.roofline); None for an unknown model."""
    if given:
        return int(given)
    from common.serving import roofline as rl
    from common.serving.models import ModelUnavailable

    try:
        return rl.kv_bytes_per_token(rl.model_shape(model), dtype)
    except (ModelUnavailable, KeyError, ValueError) as err:
        log.warning("no KV bytes per token for %s (%s): the KV bound is unavailable", model, err)
        return None


def _weights_bytes(model: str, group: pd.DataFrame, dtype: str, profile) -> float:
    if profile is not None:
        return profile.weights_bytes
    from common.serving import roofline as rl

    if "n_params" in group.columns and group["n_params"].notna().any():
        n_params = float(group["n_params"].dropna().iloc[0])
    else:
        try:
            n_params = rl.model_shape(model).n_params
        except Exception as err:  # noqa: BLE001 - any failure to build the config is the user's to fix
            raise BadInput(f"model {model!r}: cannot count its weights ({err}); give --server-memory") \
                from None
    return n_params * rl.DTYPE_BYTES[dtype]


def _dtype(group: pd.DataFrame, args) -> str:
    if args.dtype:
        return args.dtype
    for col in ("precision", "dtype"):
        if col in group.columns and group[col].notna().any():
            return str(group[col].dropna().iloc[0])
    return "fp16"  # the authors' runs (server_memory.csv: float16)


def advise_group(label: str, group: pd.DataFrame, layout: Layout, args) -> dict:
    """The BCA on one curve of a sweep: B_opt, its memory plan, and every point with its verdict."""
    source = str(args.sweep)
    model = str(group["model"].iloc[0]) if "model" in group.columns else (args.model or label)
    dtype = _dtype(group, args)
    ok_rows = group
    skipped: list[str] = []
    if "status" in group.columns:
        failed = group["status"] != "ok"
        skipped += [f"{layout.cap}={r[layout.cap]}: failed ({r.get('error')})"
                    for _, r in group[failed].iterrows()]
        ok_rows = group[~failed]
    measured = ok_rows  # every run that produced a result, for "fraction of the best measured"
    if args.exclude_preempted and layout.preemptions and layout.preemptions in ok_rows.columns:
        pre = pd.to_numeric(ok_rows[layout.preemptions], errors="coerce") > 0
        skipped += [f"{layout.cap}={c}: preempted (--exclude-preempted)"
                    for c in ok_rows.loc[pre, layout.cap]]
        ok_rows = ok_rows[~pre]

    profile = None
    if args.server_memory:
        profile = advisor.vllm_profile(read_csv(Path(args.server_memory)), model, args.server_memory_sweep,
                                   str(args.server_memory))
    kv_col = None if args.kv_col == "none" else (args.kv_col or layout.kv_col)
    kv_unit = args.kv_unit or (layout.kv_unit if kv_col == layout.kv_col else "bytes")
    pool = None
    if kv_col and kv_unit == "pct":
        pool = args.kv_pool_gib * advisor.GiB if args.kv_pool_gib else (profile.pool_bytes if profile else None)
    curve = advisor.curve_from_frame(
        ok_rows, label=label, source=source,
        batch_col=_column(args.batch_col, {"cap": layout.cap, "running": layout.running}, "batch-col"),
        throughput_col=args.throughput_col or layout.throughput,
        latency_col=_column(args.latency, layout.latency, "latency"), cap_col=layout.cap,
        kv_col=kv_col, kv_unit=kv_unit, kv_pool_bytes=pool,
        peak_batch_col=layout.peak_batch if layout.peak_batch in group.columns else None,
        preemptions_col=layout.preemptions if layout.preemptions in group.columns else None,
        prompt_len=args.prompt_tokens or _mean_length(ok_rows, layout, layout.input_tokens),
        output_len=args.output_tokens or _mean_length(ok_rows, layout, layout.output_tokens))
    curve = replace(curve, skipped=tuple(skipped) + curve.skipped)
    warnings = [f"skipped {s}" for s in curve.skipped]

    slo, rule = advisor.slo_threshold(curve, args.slo_ms, args.slo_factor, args.ref_batch)
    choice = advisor.choose_batch(curve, slo, args.epsilon, rule)
    i = choice.index

    kv_per_token = _kv_per_token(model, dtype, args.kv_bytes_per_token)
    peak = curve.peak_batch[i] if curve.peak_batch is not None else curve.batch[i]
    bound = None
    if kv_per_token and curve.prompt_len is not None and curve.output_len is not None:
        bound = advisor.kv_bound_bytes(np.ceil(peak), curve.prompt_len, curve.output_len, kv_per_token)
    if curve.kv_bytes is not None:
        kv, kv_source = float(curve.kv_bytes[i]), f"measured ({kv_col})"
    elif bound is not None:
        kv = bound
        kv_source = f"bound: {np.ceil(peak):g} x ({curve.prompt_len:g} + {curve.output_len:g}) tokens"
    else:
        raise BadInput(f"{label}: no KV measurement and no bound (give --kv-bytes-per-token and "
                       "--prompt-tokens/--output-tokens)")

    weights = _weights_bytes(model, ok_rows, dtype, profile)
    overhead = _overhead(args, profile, ok_rows, curve, i, weights, kv, model)
    device = _device_bytes(args, profile)
    plan = advisor.plan_memory(kv, weights, overhead, choice.cap, device, kv_source, args.baseline_util)

    if curve.preemptions is not None and curve.preemptions[i] > 0:
        warnings.append(f"the B_opt run was preempted {curve.preemptions[i]:g} times: its KV pool was full, "
                        "so the KV it needs is at least what was measured")
    for w in warnings:
        log.warning("%s: %s", label, w)
    best = pd.to_numeric(measured[args.throughput_col or layout.throughput], errors="coerce").max()
    return {"label": label, "model": model, "dtype": dtype, "cap_column": layout.cap,
            **_choice_dict(choice, curve, float(best)),
            "kv_measured_gib": None if curve.kv_bytes is None else float(curve.kv_bytes[i]) / advisor.GiB,
            "kv_bound_gib": None if bound is None else bound / advisor.GiB, "kv_bytes_per_token": kv_per_token,
            "prompt_tokens": curve.prompt_len, "output_tokens": curve.output_len,
            "memory": plan.to_dict(), "points": _points(curve, choice), "warnings": warnings}


def _overhead(args, profile, rows: pd.DataFrame, curve: advisor.Curve, i: int, weights: float, kv: float,
              model: str) -> advisor.Overhead:
    """In order: the user's number; vLLM's start-up accounting; a measured peak; the vLLM fit."""
    if args.overhead_gib is not None:
        return advisor.fixed_overhead(args.overhead_gib * advisor.GiB, "--overhead-gib")
    if profile is not None:
        return profile.overhead
    if "peak_memory_bytes" in rows.columns:
        at = rows[pd.to_numeric(rows[PROJECT.cap], errors="coerce") == curve.cap[i]]
        peak = pd.to_numeric(at["peak_memory_bytes"], errors="coerce").dropna()
        if len(peak):
            return advisor.fixed_overhead(max(float(peak.iloc[0]) - weights - kv, 0.0),
                                      "measured peak memory at B_opt - weights - KV")
    return vllm_fit_for(model)


def vllm_fit_for(model: str) -> advisor.Overhead:
    """The authors' vLLM overhead (advisor rows of reference/server_memory.csv) scaled to this model."""
    from common.serving.models import get_config

    frame = read_csv(AUTHORS_MEMORY)
    rows = frame[frame["sweep"] == "advisor"]
    profiles = [advisor.vllm_profile(frame, m, "advisor", str(AUTHORS_MEMORY)) for m in rows["model"]]
    fit = advisor.fit_overhead(profiles, [get_config(m).vocab_size for m in rows["model"]])
    try:
        vocab = get_config(model).vocab_size
    except Exception as err:  # noqa: BLE001 - an unknown model: the user gives the overhead instead
        raise BadInput(f"model {model!r}: no config to scale vLLM's overhead by ({err}); "
                       "give --overhead-gib") from None
    return fit.for_vocab(vocab)


def _device_bytes(args, profile) -> float:
    if args.device_mem_gib:
        return args.device_mem_gib * advisor.GiB
    if args.device:
        return _spec(args.device).mem_bytes
    if profile is not None:
        return profile.total_bytes  # the device memory vLLM saw on the authors' GPU
    raise BadInput("the device memory is unknown: give --device (e.g. h100-64gb) or --device-mem-gib")


def _spec(name: str):
    from common.hardware import get_spec

    try:
        return get_spec(name)
    except (KeyError, FileNotFoundError) as err:
        raise BadInput(f"--device: {err}") from None


def _choice_dict(c: advisor.Choice, curve: advisor.Curve, best: float | None = None) -> dict:
    """best: the highest throughput measured, runs left out by --exclude-preempted included."""
    best = max(best or 0.0, float(curve.throughput.max()))
    return {"b_opt": c.batch, "b_opt_cap": c.cap, "throughput": c.throughput, "latency_ms": c.latency_ms,
            "fraction_of_best": c.throughput / best, "efficiency": c.efficiency, "slo_ms": c.slo_ms,
            "slo_rule": c.slo_rule, "epsilon": c.epsilon, "t1": c.t1, "best_throughput": best,
            "preempted": None if curve.preemptions is None else float(curve.preemptions[c.index])}


def _points(curve: advisor.Curve, c: advisor.Choice) -> list[dict]:
    return [{"batch": float(curve.batch[j]), "cap": float(curve.cap[j]),
             "throughput": float(curve.throughput[j]), "latency_ms": float(curve.latency_ms[j]),
             "efficiency": None if c.efficiencies is None else float(c.efficiencies[j]),
             "kv_gib": None if curve.kv_bytes is None else float(curve.kv_bytes[j]) / advisor.GiB,
             "meets_slo": bool(c.meets_slo[j]), "efficient": bool(c.efficient[j]), "chosen": j == c.index}
            for j in range(len(curve.batch))]


# ---- analytic ----------------------------------------------------------------------------------
def advise_analytic(args) -> dict:
    """The roofline's curve for a model on a device (no sweep), then the same rule and memory plan."""
    from common.serving import roofline as rl
    from common.serving.models import ModelUnavailable

    try:
        shape = rl.model_shape(args.model)
    except ModelUnavailable as err:
        raise BadInput(f"--model: {err}") from None
    if not args.device:
        raise BadInput("analytic: --device is needed (its bandwidth and FLOP/s drive the roofline)")
    spec = _spec(args.device)
    if args.dtype not in spec.peak_flops or args.dtype not in rl.DTYPE_BYTES:
        raise BadInput(f"--dtype {args.dtype}: {args.device} has {', '.join(spec.peak_flops)}")
    try:
        batches = sorted({int(b) for b in args.batches.split(",")})
    except ValueError:
        raise BadInput(f"--batches {args.batches!r}: a comma-separated list of integers") from None
    if not batches or batches[0] < 1:
        raise BadInput(f"--batches {args.batches!r}: batch sizes must be >= 1")
    if args.prompt < 1 or args.output < 1:
        raise BadInput("--prompt and --output must be >= 1 token")
    device = args.device_mem_gib * advisor.GiB if args.device_mem_gib else spec.mem_bytes
    kv_per_token = rl.kv_bytes_per_token(shape, args.dtype)
    weights = shape.n_params * rl.DTYPE_BYTES[args.dtype]
    overhead = (advisor.fixed_overhead(args.overhead_gib * advisor.GiB, "--overhead-gib")
                if args.overhead_gib is not None else vllm_fit_for(args.model))

    def kv(b):
        return advisor.kv_bound_bytes(b, args.prompt, args.output, kv_per_token)

    def fits(b):  # the default engine (baseline util) must hold B sequences at full length
        return weights + kv(b) + overhead.budget_bytes(b) <= args.baseline_util * device

    label = f"{args.model} {args.prompt}+{args.output} on {args.device} (roofline)"
    curve = advisor.analytic_curve(label, shape, spec, args.prompt, args.output, batches, args.dtype, fits)
    for s in curve.skipped:
        log.warning("%s: left out %s", label, s)
    slo, rule = advisor.slo_threshold(curve, args.slo_ms, args.slo_factor, args.ref_batch)
    choice = advisor.choose_batch(curve, slo, args.epsilon, rule)
    source = f"bound: {choice.cap:g} x ({args.prompt} + {args.output}) tokens"
    plan = advisor.plan_memory(kv(choice.cap), weights, overhead, choice.cap, device, source, args.baseline_util)
    return {"label": label, "model": args.model, "dtype": args.dtype, "cap_column": "max_num_seqs",
            **_choice_dict(choice, curve),
            "kv_measured_gib": None, "kv_bound_gib": kv(choice.cap) / advisor.GiB,
            "kv_bytes_per_token": kv_per_token, "prompt_tokens": args.prompt, "output_tokens": args.output,
            "device_spec": spec.name, "memory": plan.to_dict(), "points": _points(curve, choice),
            "warnings": [f"left out {s}" for s in curve.skipped]}


# ---- output ------------------------------------------------------------------------------------
SUMMARY = [("curve", "label", "{}"), ("B_opt", "b_opt", "{:g}"), ("cap", "b_opt_cap", "{:g}"),
           ("T (tok/s)", "throughput", "{:.0f}"), ("of best", "fraction_of_best", "{:.1%}"),
           ("latency ms", "latency_ms", "{:.2f}"), ("SLO ms", "slo_ms", "{:.2f}"),
           ("KV GiB", "kv_gib", "{:.2f}"), ("alloc GiB", "footprint_gib", "{:.2f}"),
           ("gpu_mem_util", "gpu_memory_utilization", "{:.3f}"), ("freed GiB", "freed_gib", "{:.2f}"),
           ("freed %", "freed_pct", "{:.1f}"), ("replicas", "replicas", "{}")]


def _summary_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["label"], "error"] + ["-"] * (len(SUMMARY) - 2))
            continue
        flat = {**r, **r["memory"]}
        cells = [fmt.format(flat[key]) for _, key, fmt in SUMMARY]
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
            t.add_row(f"{p['batch']:g}", f"{p['cap']:g}", f"{p['throughput']:.1f}", f"{p['latency_ms']:.2f}",
                      "-" if p["efficiency"] is None else f"{p['efficiency']:.3f}",
                      "-" if p["kv_gib"] is None else f"{p['kv_gib']:.2f}", "ok" if p["meets_slo"] else "no",
                      "ok" if p["efficient"] else "no", "B_opt" if p["chosen"] else "")
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
        else:
            m = r["memory"]
            console.print(f"[bold]{r['label']}[/]: {r['cap_column']}={r['b_opt_cap']:g}, "
                          f"gpu_memory_utilization={m['gpu_memory_utilization']:.3f} (KV {m['kv_source']}; "
                          f"overhead {m['overhead_gib']:.2f} GiB from {m['overhead_source']})")


def markdown_table(results: list[dict]) -> str:
    head = [name for name, _, _ in SUMMARY]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in _summary_rows(results)]
    lines += [""] + [f"- {r['label']}: {r['error']}" for r in results if "error" in r]
    return "\n".join(lines).rstrip() + "\n"


# ---- command line ------------------------------------------------------------------------------
def _common_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("rule")
    g.add_argument("--slo-ms", type=float, help="absolute latency SLO in ms")
    g.add_argument("--slo-factor", type=float,
                   help="SLO = factor x latency at the batch nearest --ref-batch "
                        f"(default {DEFAULT_SLO_FACTOR:g} when --slo-ms is not given)")
    g.add_argument("--ref-batch", type=float, default=DEFAULT_REF_BATCH, help="see --slo-factor")
    g.add_argument("--epsilon", type=float, default=DEFAULT_EPSILON,
                   help="keep batches with T(B)/(B T(1)) > epsilon; 0 turns the filter off")
    g = p.add_argument_group("memory")
    g.add_argument("--device", help="device spec for the memory (common.hardware.SPECS key, e.g. h100-64gb)")
    g.add_argument("--device-mem-gib", type=float, help="device memory in GiB (overrides --device's)")
    g.add_argument("--baseline-util", type=float, default=advisor.VLLM_DEFAULT_UTIL,
                   help="the gpu_memory_utilization the engine runs with by default (vLLM: 0.9)")
    g.add_argument("--overhead-gib", type=float,
                   help="memory besides weights and KV, per replica (default: vLLM's start-up accounting)")
    g.add_argument("--dtype", help="weights and KV-cache dtype (default: the sweep's, else fp16)")
    g.add_argument("--json", type=Path, help="write the full result (every point) here")
    g.add_argument("--markdown", type=Path, help="write the summary table here as markdown")


def sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m papers.batching.advise", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", nargs="?", type=Path, help="results.jsonl, or a CSV in the authors' layout")
    p.add_argument("--all-authors", action="store_true",
                   help="every model x output length of the authors' advisor sweep "
                        "(papers/batching/reference)")
    g = p.add_argument_group("which curve")
    g.add_argument("--model")
    g.add_argument("--output-len", help="the authors' output length (130, 260, 390, 520)")
    g.add_argument("--workload", help="this project's workload label, e.g. fixed-161-338")
    g = p.add_argument_group("columns")
    g.add_argument("--batch-col", default="cap",
                   help="cap (max_num_seqs / batch_size), running (mean_running_batch), or a column name")
    g.add_argument("--latency", default=DEFAULT_LATENCY, help="itl, tpot, or a column name (ms)")
    g.add_argument("--throughput-col", help="default: total tokens/s")
    g.add_argument("--kv-col", help="peak KV usage column (default: the format's); 'none' uses the bound")
    g.add_argument("--kv-unit", choices=("pct", "bytes"), help="of --kv-col (default: the format's)")
    g.add_argument("--kv-pool-gib", type=float, help="size of the KV pool a usage %% refers to, GiB")
    g.add_argument("--server-memory", type=Path,
                   help="vLLM start-up accounting (reference/server_memory.csv)")
    g.add_argument("--server-memory-sweep", help="its row for this sweep: advisor or background")
    g.add_argument("--kv-bytes-per-token", type=int, help="for a model without a built-in config")
    g.add_argument("--prompt-tokens", type=float, help="for the KV bound (default: the sweep's mean)")
    g.add_argument("--output-tokens", type=float, help="for the KV bound (default: the sweep's mean)")
    g.add_argument("--exclude-preempted", action="store_true", help="leave out runs that preempted")
    _common_args(p)
    return p


def analytic_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m papers.batching.advise analytic",
                                description="B_opt and memory from the roofline model alone (no sweep)")
    p.add_argument("--model", required=True, help="a built-in architecture (common.serving.models.ARCHS)")
    p.add_argument("--prompt", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--output", type=int, required=True, help="output tokens per request")
    p.add_argument("--batches", default=ANALYTIC_BATCHES, help="batch grid, comma-separated")
    _common_args(p)
    p.set_defaults(dtype="fp16")
    return p


def settings_of(args) -> dict:
    keys = ("batch_col", "latency", "throughput_col", "slo_ms", "slo_factor", "ref_batch", "epsilon",
            "kv_col", "kv_pool_gib", "server_memory", "server_memory_sweep", "device", "device_mem_gib",
            "baseline_util", "overhead_gib", "exclude_preempted", "prompt", "output", "batches", "dtype")
    return {k: (_shown(v) if isinstance(v, Path) else v) for k in keys
            if (v := getattr(args, k, None)) is not None and v is not False}


def _shown(path: Path) -> str:
    """A path as a user in the repository would type it."""
    from common.repo import REPO_ROOT

    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def run(argv: list[str]) -> tuple[list[dict], dict, argparse.Namespace]:
    """Parse, advise; returns (results, settings, args). Raises BadInput on bad input."""
    if argv and argv[0] == "analytic":
        args = analytic_parser().parse_args(argv[1:])
    else:
        args = sweep_parser().parse_args(argv)
        if args.all_authors:
            if args.sweep is not None:
                raise BadInput("--all-authors reads the authors' sweep; give no sweep file with it")
            args.sweep, args.server_memory = AUTHORS_SWEEP, args.server_memory or AUTHORS_MEMORY
            args.server_memory_sweep = args.server_memory_sweep or "advisor"
        elif args.sweep is None:
            raise BadInput("give a sweep file (results.jsonl or CSV), --all-authors, or the analytic command")
    if args.slo_ms is None and args.slo_factor is None:
        args.slo_factor = DEFAULT_SLO_FACTOR
    advisor.check_epsilon(args.epsilon)
    settings = settings_of(args)
    if argv and argv[0] == "analytic":
        return [advise_analytic(args)], settings, args

    frame, layout = read_sweep(Path(args.sweep))
    groups = _groups(frame, layout, args)
    log.info("BCA on %s (%s layout): %d curve(s)", args.sweep, layout.name, len(groups))
    results = []
    for label, group in groups:
        try:
            results.append(advise_group(label, group, layout, args))
        except BadInput as err:
            if len(groups) == 1:
                raise
            message = str(err).removeprefix(f"{label}: ")
            log.warning("%s: %s", label, message)
            results.append({"label": label, "error": message})
    if all("error" in r for r in results):
        raise BadInput("no curve could be advised: "
                       + "; ".join(f"{r['label']}: {r['error']}" for r in results))
    settings["sweep"] = _shown(Path(args.sweep))
    return results, settings, args


def main(argv: list[str] | None = None) -> int:
    from common.logging import setup_logging

    setup_logging(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    try:
        results, settings, args = run(argv)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_results(results, settings)
    if args.json:
        write_atomic(args.json, json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    if args.markdown:
        write_atomic(args.markdown, markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
