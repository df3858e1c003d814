"""The serving sweep: models x workloads x batch sizes, each cell measured and stored as one result row.

Both serving papers (batching, slm_energy) call `run_sweep` from their own entry points with their own
grids (their configs' shared keys become a SweepSpec through `common.serving.config.sweep_settings`);
gpu_check calls it where hydra is absent. Each cell runs its requests as static batches of batch_size,
after a warm-up and for several repeats (the median is stored), with energy read over the whole run
and over the steady state (the decode steps while the batch is full) through `common.gpu_metrics`.
Cells go through the result store, so a rerun skips finished cells and a crashing or out-of-memory cell
is stored as failed while the sweep goes on.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.results import STATUS_FAILED, ResultStore
from common.serving.engine import DECODE_START, DRAIN_START, RUN_END, BatchResult, Engine, make_engine
from common.serving.metrics import median_over_repeats, summarise
from common.serving.models import resolve_device
from common.serving.workloads import Request, WorkloadSpec, length_stats, sweep_requests

log = logging.getLogger(__name__)


@dataclass
class SweepSpec:
    """A sweep's grid and how each cell is measured; ValueError for an empty grid or a count below 1."""

    models: list[str]
    batch_sizes: list[int]
    workloads: list[WorkloadSpec]
    engine: str = "hf"
    engine_options: dict = field(default_factory=dict)  # e.g. cache, compile_mode (hf); max_num_seqs (vllm)
    device: str = "auto"
    dtype: str = "fp32"
    num_batches: int = 1  # static batches per cell: the cell serves batch_size * num_batches requests
    warmup: int = 1  # untimed runs of the cell's first batch before measuring
    warmup_tokens: int | None = None  # new tokens per warm-up run; None: the workload's own
    repeats: int = 3
    cooldown_s: float = 0.0  # pause after each measured cell (a GPU's clocks and temperature settle)
    monitor: str = "auto"  # common.gpu_metrics backend: auto | nvml | cpu
    sample_hz: float = 10.0

    def __post_init__(self):
        if not self.models or not self.batch_sizes or not self.workloads:
            raise ValueError("a sweep needs at least one model, batch size and workload")
        if min(self.batch_sizes) < 1 or self.num_batches < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("batch sizes, num_batches and repeats must be >= 1, warmup >= 0")


def cell_for(spec: SweepSpec, model: str, workload: WorkloadSpec, batch_size: int, device: str) -> dict:
    """Every parameter that changes what is measured; repeats and warm-up only change its precision.

    On a CPU the thread count changes the timings, so it is part of the key there.
    """
    cell = {
        "model": model,
        "engine": spec.engine,
        "engine_options": ",".join(f"{k}={v}" for k, v in sorted(spec.engine_options.items())),
        "dtype": spec.dtype,
        "device": device,
        "workload": workload.label,
        "batch_size": batch_size,
        "num_requests": batch_size * spec.num_batches,
    }
    if device == "cpu":
        import torch

        cell["torch_threads"] = torch.get_num_threads()
    return cell


class SteadyWindows:
    """Opens a monitor window when the batch is full and decoding, closes it when the batch drains."""

    def __init__(self, monitor, tag: str):
        self.monitor, self.tag, self.measurements, self._open = monitor, tag, [], None

    def __call__(self, phase: str) -> None:
        """The engine's hook: a window opens at DECODE_START and closes at DRAIN_START or RUN_END."""
        if phase == DECODE_START:
            self._open = f"{self.tag}/steady{len(self.measurements)}"
            self.monitor.begin_window(self._open)
        elif phase in (DRAIN_START, RUN_END) and self._open:
            self.measurements.append(self.monitor.end_window(self._open))
            self._open = None


def _ratio(num: float | None, den: float) -> float | None:
    return num / den if num is not None and den else None


def _energy_columns(run, steady: list, batches: list[BatchResult]) -> dict:
    out_tokens = sum(b.output_tokens for b in batches)
    steady_tokens = sum(
        s.tokens for b in batches for s in b.steps if s.kind == "decode" and s.batch == len(b.requests)
    )
    steady_time = sum(m.time_s for m in steady)
    steady_energy = None
    if steady and all(m.total_energy_j is not None for m in steady):
        steady_energy = sum(m.total_energy_j for m in steady)
    energy = run.total_energy_j
    return {
        "energy_j": energy,
        "mean_power_w": run.total_mean_power_w,
        "energy_per_output_token_j": _ratio(energy, out_tokens),
        "steady_time_s": steady_time,
        "steady_tokens": steady_tokens,
        "steady_energy_j": steady_energy,
        "steady_mean_power_w": _ratio(steady_energy, steady_time),
        "steady_energy_per_token_j": _ratio(steady_energy, steady_tokens),
        "utilization_pct": run.to_dict()["utilization_pct"],
        "energy_source": run.to_dict()["energy_source"],
        "energy_missing_reason": run.energy_missing_reason,
        "monitor_backend": run.backend,
    }


def measure_cell(
    engine: Engine,
    requests: list[Request],
    batch_size: int,
    monitor,
    warmup: int = 1,
    warmup_tokens: int | None = None,
    repeats: int = 3,
) -> dict:
    """Serve `requests` as static batches of `batch_size`, `repeats` times; each metric's median over
    the repeats. A failure mid-run closes the windows it opened, so the next cell can open its own."""
    batches = [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]
    first = batches[0]
    for _ in range(warmup):
        engine.run([list(r.prompt_ids) for r in first], warmup_tokens or [r.output_len for r in first])
    rows = []
    for rep in range(repeats):
        tag = f"rep{rep}"
        steady = SteadyWindows(monitor, tag)
        monitor.begin_window(tag)
        try:
            results = [
                engine.run([list(r.prompt_ids) for r in b], [r.output_len for r in b], hook=steady)
                for b in batches
            ]
        except BaseException:
            steady(RUN_END)
            monitor.end_window(tag)
            raise
        run = monitor.end_window(tag)
        rows.append({**summarise(results), **_energy_columns(run, steady.measurements, results)})
    return median_over_repeats(rows)


def _free_device() -> None:
    """After a cell (an out-of-memory one above all) give cached blocks back so the next cell starts clean."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _progress(enabled: bool, total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cells"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def run_sweep(
    spec: SweepSpec,
    store: ResultStore,
    requests_dir: str | Path,
    progress: bool = True,
    engine_factory: Callable[[str], Engine] | None = None,
    extra_cell: dict | None = None,
) -> pd.DataFrame:
    """Measure every cell not yet in `store`; returns the store's rows (finished and failed).

    requests_dir: where each workload's request list is stored once (JSON) and re-read by reruns.
    engine_factory(model) -> Engine replaces the default `make_engine(spec.engine, model, ...)`.
    extra_cell: parameters a paper adds to every cell key (e.g. its experiment's variant).
    """
    device = resolve_device(spec.device).type
    options = dict(spec.engine_options)
    if spec.engine == "vllm":  # a static batch of B must be admitted whole
        options.setdefault("max_num_seqs", max(spec.batch_sizes))
    factory = engine_factory or (
        lambda model: make_engine(spec.engine, model, device=spec.device, dtype=spec.dtype, **options)
    )
    grid = [(m, w, b) for m in spec.models for w in spec.workloads for b in spec.batch_sizes]
    cells = {(m, w.label, b): {**cell_for(spec, m, w, b, device), **(extra_cell or {})} for m, w, b in grid}
    todo = [key for key, cell in cells.items() if not store.done(cell)]
    log.info(
        "serving sweep: %d cells, %d to run (%d finished earlier) | engine %s, %s, device %s",
        len(cells),
        len(todo),
        len(cells) - len(todo),
        spec.engine,
        spec.dtype,
        device,
    )
    with _progress(progress, len(cells)) as bar:
        task = bar.add_task("serving sweep", total=len(cells), completed=len(cells) - len(todo))

        def progress_to(text: str | None = None) -> None:
            """A cell starts (text names it) or ends (None)."""
            if text:
                bar.update(task, description=text)
            else:
                bar.advance(task)

        for model in spec.models:
            keys = [k for k in todo if k[0] == model]
            if keys:
                _sweep_model(
                    spec, model, {k: cells[k] for k in keys}, store, factory, Path(requests_dir), progress_to
                )
    return store.load(status=None)


def _sweep_model(
    spec: SweepSpec,
    model: str,
    cells: dict,
    store: ResultStore,
    factory,
    requests_dir: Path,
    progress: Callable[[str | None], None],
) -> None:
    """One model's unfinished cells; the engine (model weights, a server) is built once for all of them."""
    try:
        engine = factory(model)
    except Exception as err:  # noqa: BLE001 - a model that cannot load fails its cells, not the sweep
        log.error("model %s: cannot build the engine: %s", model, err)
        for cell in cells.values():
            store.append(cell, STATUS_FAILED, error=f"engine for {model}: {err!r}")
            progress(None)
        return
    try:
        described = engine.describe()
        log.info("model %s on %s: %s", model, described["device_name"], described)
        vocab = described["vocab_size"]
        columns = {k: v for k, v in described.items() if k not in next(iter(cells.values()))}
        with _make_monitor(spec) as monitor:
            for workload in spec.workloads:
                path = requests_dir / f"requests_{workload.label}_v{vocab}.json"
                requests = sweep_requests(path, workload, max(spec.batch_sizes) * spec.num_batches, vocab)
                for batch_size in spec.batch_sizes:
                    cell = cells.get((model, workload.label, batch_size))
                    if cell is None:
                        continue
                    chosen = requests[: batch_size * spec.num_batches]
                    progress(f"{model} {workload.label} B={batch_size}")

                    def measure(chosen=chosen, batch_size=batch_size) -> dict:
                        metrics = measure_cell(
                            engine, chosen, batch_size, monitor, spec.warmup, spec.warmup_tokens, spec.repeats
                        )
                        stats = {f"workload_{k}": v for k, v in length_stats(chosen).items()}
                        # CPU timings depend on what else runs: the 1-minute load average after the cell
                        return {**metrics, **columns, **stats, "load_avg_1m": os.getloadavg()[0]}

                    row = store.run_cell(cell, measure)
                    _report(row, cell)
                    _free_device()
                    progress(None)
                    if spec.cooldown_s > 0:
                        time.sleep(spec.cooldown_s)
    finally:
        engine.close()
        _free_device()


def _make_monitor(spec: SweepSpec):
    from common.gpu_metrics import Monitor

    return Monitor(backend=spec.monitor, sample_hz=spec.sample_hz)


def _report(row: dict | None, cell: dict) -> None:
    if row is None:
        return
    if row["status"] != "ok":
        log.warning("cell %s failed: %s", cell, row["error"])
        return
    m = row["metrics"]
    log.info(
        "%s B=%d: %.1f output tok/s, step %.2f ms, TTFT %.1f ms, energy %s (%s)",
        cell["model"],
        cell["batch_size"],
        m["output_throughput_tok_s"],
        m["step_ms_mean"] or float("nan"),
        m["ttft_ms_mean"],
        "n/a" if m["energy_j"] is None else f"{m['energy_j']:.1f} J",
        m["device_name"],
    )


def scaling_summary(frame: pd.DataFrame) -> list[dict]:
    """How output throughput grew with the batch, per (model, workload, engine, dtype, device).

    sublinear: from the smallest to the largest batch, throughput grew by less than the batch did (a
    step costs more as the batch grows); sublinear_every_step: so between every pair of neighbouring
    batch sizes; increasing: it never fell.
    """
    if frame.empty or "status" not in frame:
        return []
    ok = frame[frame["status"] == "ok"]
    out = []
    for (model, workload, engine, dtype, device), group in ok.groupby(
        ["model", "workload", "engine", "dtype", "device"], sort=False
    ):
        g = group.sort_values("batch_size")
        b = g["batch_size"].to_numpy(dtype=float)
        t = g["output_throughput_tok_s"].to_numpy(dtype=float)
        if len(g) < 2:
            continue
        out.append(
            {
                "model": model,
                "workload": workload,
                "engine": engine,
                "dtype": dtype,
                "device": device,
                "device_name": g["device_name"].iloc[0],
                "throughput_tok_s": {int(k): float(v) for k, v in zip(b, t)},
                "batch_min": int(b[0]),
                "batch_max": int(b[-1]),
                "batch_ratio": int(b[-1] / b[0]),
                "throughput_gain": float(t[-1] / t[0]),
                "sublinear": bool(t[-1] / t[0] < b[-1] / b[0]),
                "sublinear_every_step": bool(((t[1:] / t[:-1]) < (b[1:] / b[:-1])).all()),
                "increasing": bool((t[1:] >= t[:-1]).all()),
            }
        )
    return out
