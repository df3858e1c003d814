"""An online search for B_opt on a live engine, without a full sweep, and the engine settings it gives.

    python -m papers.batching.tune                       # opt-16m on this CPU (hf engine)
    python -m papers.batching.tune compare_sweep=true    # and the full sweep: time ratio, throughput gap
    python -m papers.batching.tune engine=vllm device=cuda model=opt-1.3b dtype=fp16 ...   # on a GPU node

The BCA (papers.batching.advisor) needs a sweep: every batch size measured at full length, a few times.
Most of that time goes to the largest batches, past the plateau the BCA exists to find. The tuner walks
up the batch grid with short probes instead and stops where the rule stops:

1. a short probe at batch B serves B requests of the workload for `probe_tokens` new tokens
   (`probe_repeats` times, the median kept), their prompts lengthened so the decode steps hold the
   workload's mean context (prompt + output / 2); the first token's time (the prefill, scaled back to the
   workload's prompt) and the mean gap between later tokens give the workload's per-token latency and an
   estimate of its total tokens/s at B;
2. it probes batch 1 (T(1), for the efficiency filter; three times, it is cheap) and the batch nearest
   ref_batch (the SLO's anchor, when the SLO is a factor; twice), then climbs the grid from there, stopping at
   the first batch that misses the SLO, falls to T(B) / (B T(1)) <= epsilon, or gains less than min_gain
   per doubling (the plateau), each confirmed by a second probe (shared cores are noisy); if the anchor
   itself fails, it walks down instead;
3. the BCA's rule (the same function, common selection) picks B_opt among the probed batches.

It prints and saves what to give the engine: vLLM's `--max-num-seqs` B_opt and `--gpu-memory-utilization`
from the BCA's memory plan (the KV bound of B_opt at the workload's lengths plus vLLM's overhead), as
command-line flags (<result_dir>/vllm_flags.txt) and as a `vllm serve --config` YAML
(<result_dir>/vllm_serve.yaml), with tune.json (every probe, the choice, the settings). With
`compare_sweep=true` it then measures the full sweep over the same grid as papers.batching.sweep does
(warmup, repeats, full lengths), applies the same rule, and reports the probe-time ratio and the throughput
gap: 1 - T_sweep(tuner's B_opt) / T_sweep(sweep's B_opt), both read from the sweep's own measurements.
"""

from __future__ import annotations

import json
import logging
import math
import time

import papers.batching.config  # noqa: F401 - registers the schema
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput

log = logging.getLogger(__name__)
VLLM_DTYPE = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


# ---- probes ------------------------------------------------------------------------------------------
def probe_requests(requests: list, probe_tokens: int) -> tuple[list[list[int]], list[int]]:
    """Each request's prompt lengthened by (output - probe_tokens) / 2 tokens (its own ids, repeated), so
    that `probe_tokens` decode steps run at the workload's mean context; `probe_tokens` new tokens each."""
    prompts = []
    for r in requests:
        extra = max(int(round((r.output_len - probe_tokens) / 2)), 0)
        ids = list(r.prompt_ids)
        prompts.append(ids + (ids * (extra // len(ids) + 1))[:extra])
    return prompts, [probe_tokens] * len(requests)


def short_probe(engine, requests: list, probe_tokens: int, repeats: int = 1) -> dict:
    """One short run of len(requests) sequences; the workload's per-token latency and total throughput
    estimated from its token times (as the sweep's TPOT is): the first token's time is the prefill (scaled
    back to the workload's prompt), the mean gap between later tokens the per-token latency (the first gap
    left out: a new batch shape's first decode step allocates)."""
    import numpy as np

    prompts, new = probe_requests(requests, probe_tokens)
    start = time.perf_counter()
    results = [engine.run(prompts, new) for _ in range(repeats)]
    wall = time.perf_counter() - start

    def itl(result) -> float:
        gaps = [g for r in result.requests for g in np.diff(r.token_times_s)[1:]]
        return float(np.mean(gaps or [g for r in result.requests for g in np.diff(r.token_times_s)]))

    itl = float(np.median([itl(r) for r in results]))
    prompt = float(np.mean([r.prompt_len for r in requests]))
    output = float(np.mean([r.output_len for r in requests]))
    lengthened = float(np.mean([len(p) for p in prompts]))
    first = float(np.median([np.mean([r.token_times_s[0] for r in res.requests]) for res in results]))
    prefill = first * prompt / lengthened  # the prefill's time is about linear in its tokens
    batch = len(requests)
    est_time = prefill + max(output - 1.0, 0.0) * itl
    return {
        "batch": batch,
        "latency_ms": itl * 1e3,
        "prefill_s": prefill,
        "throughput": batch * (prompt + output) / est_time,
        "probe_time_s": wall,
        "prompt_mean": prompt,
        "output_mean": output,
    }


class Search:
    """The walk over the batch grid (module docstring, step 2). `probe(B)` returns short_probe's dict; a
    batch probed more than once counts with the median of its probes. Batch 1 is probed three times (it
    is cheap, and every efficiency divides by it), and a batch at which the walk would stop is probed
    once more first, with what it was compared with (batch 1 for epsilon, the batch below for the
    plateau): one noisy probe on shared cores does not end the walk."""

    def __init__(
        self,
        grid: list[int],
        probe,
        slo_ms: float | None,
        slo_factor: float | None,
        ref_batch: float,
        epsilon: float,
        min_gain: float,
    ):
        self.grid, self.probe = sorted(set(grid)), probe
        self.slo_ms, self.slo_factor, self.ref_batch = slo_ms, slo_factor, ref_batch
        self.epsilon, self.min_gain = epsilon, min_gain
        self.runs: dict[int, list[dict]] = {}
        self.stop = ""

    def measure(self, b: int) -> dict:
        p = self.probe(b)
        self.runs.setdefault(b, []).append(p)
        log.info(
            "probe B=%d: latency %.2f ms, ~%.0f tok/s (%.2f s)",
            b,
            p["latency_ms"],
            p["throughput"],
            p["probe_time_s"],
        )
        return self.point(b)

    def point(self, b: int) -> dict:
        import numpy as np

        runs = self.runs[b]
        return {
            **runs[0],
            "throughput": float(np.median([r["throughput"] for r in runs])),
            "latency_ms": float(np.median([r["latency_ms"] for r in runs])),
            "probe_time_s": sum(r["probe_time_s"] for r in runs),
            "probes": len(runs),
        }

    @property
    def points(self) -> dict[int, dict]:
        return {b: self.point(b) for b in sorted(self.runs)}

    def at(self, b: int) -> dict:
        return self.point(b) if b in self.runs else self.measure(b)

    def efficiency(self, b: int) -> float | None:
        if 1 not in self.runs:
            return None
        return self.point(b)["throughput"] / (b * self.point(1)["throughput"])

    def reason(self, b: int, slo: float, below: int | None = None) -> str | None:
        """Why the walk stops at batch b (None: it goes on): the SLO, epsilon, or the plateau (the gain
        over `below`)."""
        p = self.point(b)
        if p["latency_ms"] > slo:
            return f"batch {b} misses the SLO ({p['latency_ms']:.2f} > {slo:.2f} ms)"
        eff = self.efficiency(b)
        if self.epsilon > 0 and eff is not None and eff <= self.epsilon:
            return f"batch {b} has efficiency {eff:.3f} <= epsilon {self.epsilon:g}"
        if below is not None:
            gain = p["throughput"] / self.point(below)["throughput"]
            if gain < (1 + self.min_gain) ** math.log2(b / below):
                return f"the plateau: batch {b} gains x{gain:.3f} over batch {below}"
        return None

    def confirmed(self, b: int, slo: float, below: int | None = None) -> str | None:
        """The reason to stop at b, if it holds after probing b once more, and what it is compared with:
        batch 1 for epsilon, the batch below for the plateau."""
        why = self.reason(b, slo, below)
        if why is None or len(self.runs[b]) > 1:
            return why
        self.measure(b)
        if why.startswith("the plateau") and below is not None and len(self.runs[below]) < 2:
            self.measure(below)
        if "epsilon" in why and b != 1:
            self.measure(1)
        return self.reason(b, slo, below)

    def run(self) -> float:
        """Probe until the rule's constraints bind; returns the SLO in ms."""
        from papers.batching.advisor import nearest_index

        if self.epsilon > 0 and self.grid[0] != 1:
            raise BadInput("epsilon: the efficiency filter needs batch 1 in batch_sizes (or epsilon=0)")
        if self.grid[0] == 1:
            for _ in range(3):
                self.measure(1)
        if self.slo_ms is not None:
            slo, start = float(self.slo_ms), 0
        else:  # the SLO is a factor times one batch's latency: that batch is probed twice
            start = nearest_index(self.grid, self.ref_batch)
            while len(self.runs.get(self.grid[start], [])) < 2:
                self.measure(self.grid[start])
            slo = self.slo_factor * self.point(self.grid[start])["latency_ms"]
        i = start
        self.at(self.grid[i])
        if start > 0 and self.confirmed(self.grid[i], slo):  # the anchor fails: walk down
            while i > 0 and self.reason(self.grid[i], slo):
                i -= 1
                self.at(self.grid[i])
            self.stop = f"walked down from batch {self.grid[start]}: it misses the SLO or epsilon"
            return slo
        while i + 1 < len(self.grid):
            self.at(self.grid[i + 1])
            why = self.confirmed(self.grid[i + 1], slo, below=self.grid[i])
            if why:
                self.stop = why
                return slo
            i += 1
        self.stop = f"the top of the grid (batch {self.grid[-1]})"
        return slo


def choose(points: dict[int, dict], slo: float, epsilon: float, selection: str, label: str):
    """The BCA's rule (advisor.choose_batch) on probed or measured points."""
    from papers.batching.advisor import choose_batch, make_curve

    batches = sorted(points)
    curve = make_curve(
        label, batches, [points[b]["throughput"] for b in batches], [points[b]["latency_ms"] for b in batches]
    )
    return choose_batch(curve, slo, epsilon if 1 in points else 0.0, f"{slo:.4g} ms", selection)


# ---- what to give the engine -------------------------------------------------------------------------
def engine_settings(
    model: str,
    b_opt: int,
    prompt: float,
    output: float,
    dtype: str,
    device_bytes: float,
    device_source: str,
    baseline_util: float,
) -> dict:
    """vLLM's --max-num-seqs and --gpu-memory-utilization for B_opt: the BCA's memory plan of the KV bound
    (every sequence at full length) with vLLM's overhead (advisor.vllm_fit_for)."""
    from common.serving import roofline as rl
    from papers.batching import advisor

    shape = rl.model_shape(model)
    kv = advisor.kv_bound_bytes(b_opt, prompt, output, rl.kv_bytes_per_token(shape, dtype))
    try:
        overhead = advisor.vllm_fit_for(model)
    except BadInput:
        overhead = advisor.fixed_overhead(0.0, "none known for this model")
    weights = shape.n_params * rl.DTYPE_BYTES[dtype]
    plan = advisor.plan_memory(
        kv,
        weights,
        overhead,
        b_opt,
        device_bytes,
        f"bound: {b_opt} x ({prompt:g} + {output:g}) tokens",
        baseline_util,
    )
    flags = {"max-num-seqs": int(b_opt), "gpu-memory-utilization": plan.gpu_memory_utilization}
    return {
        "flags": flags,
        "memory": plan.to_dict(),
        "device_memory_source": device_source,
        "command": f"vllm serve {model} --dtype {VLLM_DTYPE.get(dtype, dtype)} "
        + " ".join(f"--{k} {v}" for k, v in flags.items()),
        "config_yaml": {"model": model, "dtype": VLLM_DTYPE.get(dtype, dtype), **flags},
    }


def _device_memory(cfg, engine_device: str) -> tuple[float, str]:
    from common.hardware import device_memory

    if cfg.device_mem_gib:
        return cfg.device_mem_gib * 2**30, "device_mem_gib"
    mem = device_memory(engine_device)
    return float(mem.total_bytes), mem.source


# ---- the comparison with the full sweep ----------------------------------------------------------------
def full_sweep(
    engine,
    requests: list,
    grid: list[int],
    warmup: int,
    warmup_tokens: int | None,
    repeats: int,
    monitor_backend: str = "auto",
    sample_hz: float = 10.0,
) -> tuple[dict[int, dict], float]:
    """Every batch of the grid measured as papers.batching.sweep measures a cell; (points, wall time)."""
    from common.gpu_metrics import Monitor
    from common.serving.harness import measure_cell

    points, total = {}, 0.0
    with Monitor(backend=monitor_backend, sample_hz=sample_hz) as monitor:
        for b in sorted(grid):
            start = time.perf_counter()
            m = measure_cell(engine, requests[:b], b, monitor, warmup, warmup_tokens, repeats)
            elapsed = time.perf_counter() - start
            total += elapsed
            points[b] = {
                "batch": b,
                "throughput": m["total_throughput_tok_s"],
                "latency_ms": m["tpot_ms_mean"],
                "probe_time_s": elapsed,
            }
            log.info(
                "sweep B=%d: TPOT %.2f ms, %.0f tok/s (%.2f s)",
                b,
                m["tpot_ms_mean"],
                m["total_throughput_tok_s"],
                elapsed,
            )
    return points, total


def compare(tuned: dict, sweep_points: dict, sweep_time: float, cfg) -> dict:
    """The tuner against the full sweep, by the sweep's own measurements."""
    from papers.batching.advisor import nearest_index

    grid = sorted(sweep_points)
    if cfg.slo_ms is not None:
        slo = float(cfg.slo_ms)
    else:
        slo = cfg.slo_factor * sweep_points[grid[nearest_index(grid, cfg.ref_batch)]]["latency_ms"]
    best = choose(sweep_points, slo, cfg.epsilon, cfg.selection, "full sweep")
    b_tuner = tuned["b_opt"]
    t_sweep_best = sweep_points[int(best.batch)]["throughput"]
    t_sweep_tuner = sweep_points[b_tuner]["throughput"]
    return {
        "sweep_b_opt": int(best.batch),
        "sweep_slo_ms": slo,
        "sweep_time_s": sweep_time,
        "tuner_time_s": tuned["probe_time_s"],
        "probe_time_ratio": tuned["probe_time_s"] / sweep_time,
        "throughput_at_sweep_b_opt": t_sweep_best,
        "throughput_at_tuner_b_opt": t_sweep_tuner,
        "throughput_gap": 1 - t_sweep_tuner / t_sweep_best,
        "tuner_meets_sweep_slo": bool(sweep_points[b_tuner]["latency_ms"] <= slo),
        "sweep_points": [sweep_points[b] for b in grid],
    }


# ---- the command -------------------------------------------------------------------------------------
def tune(engine, requests: list, cfg) -> dict:
    """The search and the choice on a live engine; the probes' wall time included."""
    grid = sorted(set(cfg.batch_sizes))
    start = time.perf_counter()
    search = Search(
        grid,
        lambda b: short_probe(engine, requests[:b], cfg.probe_tokens, cfg.probe_repeats),
        cfg.slo_ms,
        cfg.slo_factor,
        cfg.ref_batch,
        cfg.epsilon,
        cfg.min_gain,
    )
    slo = search.run()
    choice = choose(search.points, slo, cfg.epsilon, cfg.selection, "tuner")
    elapsed = time.perf_counter() - start
    probed = list(search.points.values())
    return {
        "b_opt": int(choice.batch),
        "slo_ms": slo,
        "stop": search.stop,
        "probes": probed,
        "probed_batches": [p["batch"] for p in probed],
        "probe_runs": sum(p["probes"] for p in probed),
        "throughput_estimate": choice.throughput,
        "latency_ms": choice.latency_ms,
        "probe_time_s": sum(p["probe_time_s"] for p in probed),
        "search_time_s": elapsed,
    }


@entrypoint("batching/tune", x_axis="batch_size")
def main(cfg, run):
    import yaml

    from common.serving import config as serving
    from common.serving.engine import make_engine
    from common.serving.workloads import sweep_requests

    grid = sorted(set(cfg.batch_sizes))
    workload = serving.workload_spec(cfg.workload)
    options = dict(cfg.engine_options)
    if cfg.engine == "vllm":
        options.setdefault("max_num_seqs", max(grid))
    engine = make_engine(cfg.engine, cfg.model, device=cfg.device, dtype=cfg.dtype, **options)
    try:
        described = engine.describe()
        vocab = described["vocab_size"]
        requests = sweep_requests(
            run.result_dir / f"requests_{workload.label}_v{vocab}.json", workload, max(grid), vocab
        )
        for _ in range(cfg.warmup):  # the engine's first run (allocations, kernel choice), not a probe
            engine.run([list(requests[0].prompt_ids)], 2)
        cell = {
            "model": cfg.model,
            "engine": cfg.engine,
            "dtype": cfg.dtype,
            "device": described["device"],
            "workload": workload.label,
            "run": run.dir.name,
        }
        tuned = tune(engine, requests, cfg)
        for p in tuned["probes"]:
            run.results.append({**cell, "batch_size": p["batch"], "probe": "short"}, "ok", metrics=p)
        device_bytes, source = _device_memory(cfg, described["device"])
        prompt = tuned["probes"][0]["prompt_mean"]
        output = tuned["probes"][0]["output_mean"]
        settings = engine_settings(
            cfg.model, tuned["b_opt"], prompt, output, cfg.dtype, device_bytes, source, cfg.baseline_util
        )
        summary = {
            "model": cfg.model,
            "engine": cfg.engine,
            "device": described["device_name"],
            "workload": workload.label,
            "grid": grid,
            **{k: v for k, v in tuned.items()},
            "settings": settings,
        }
        if cfg.compare_sweep:
            points, sweep_time = full_sweep(
                engine, requests, grid, cfg.warmup, cfg.warmup_tokens, cfg.repeats, cfg.monitor, cfg.sample_hz
            )
            for b, p in points.items():
                run.results.append({**cell, "batch_size": b, "probe": "sweep"}, "ok", metrics=p)
            summary["compare"] = compare(tuned, points, sweep_time, cfg)
    finally:
        engine.close()
    out = run.result_dir
    write_atomic(out / "vllm_serve.yaml", yaml.safe_dump(settings["config_yaml"], sort_keys=False))
    write_atomic(out / "vllm_flags.txt", settings["command"] + "\n")
    write_atomic(out / "tune.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(report(summary))
    return summary


def report(summary: dict) -> str:
    lines = [
        f"B_opt = {summary['b_opt']} on {summary['device']} ({summary['model']}, {summary['engine']}, "
        f"{summary['workload']}): probed {summary['probed_batches']} of {summary['grid']} in "
        f"{summary['probe_time_s']:.1f} s; stopped at {summary['stop']}",
        f"  estimated {summary['throughput_estimate']:.0f} tok/s at {summary['latency_ms']:.2f} ms per "
        f"token (SLO {summary['slo_ms']:.2f} ms)",
        f"  engine settings: {summary['settings']['command']}",
        f"  vllm serve --config: {json.dumps(summary['settings']['config_yaml'])}",
    ]
    if "compare" in summary:
        c = summary["compare"]
        lines.append(
            f"  against the full sweep: B_opt {c['sweep_b_opt']}, probe time "
            f"{c['tuner_time_s']:.1f} s vs {c['sweep_time_s']:.1f} s (ratio "
            f"{c['probe_time_ratio']:.3f}), throughput gap {100 * c['throughput_gap']:.1f}% "
            "(the sweep's own measurements)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
