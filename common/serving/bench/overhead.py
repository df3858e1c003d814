"""The harness's timing overhead: a run with per-step timing, phase hooks and energy windows open
against the same run with only its two ends timed. The issue asks for < 2%.

Two estimates. A/B: wall time taken outside both variants (so the window edges count too), runs
interleaved, medians and bests compared; on a shared machine other processes make this noisy by a few
percent either way. Components: what the harness adds, timed on its own over many calls (a step mark,
a pair of window edges) and scaled to one run's count of them, over the bare run's time.

    python -m common.serving.bench.overhead [model=opt-16m] [batch_sizes=[1,32]]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from common.app import entrypoint
from common.schema import spec
from common.serving.config import EngineBenchConfig

log = logging.getLogger(__name__)


@dataclass
class OverheadConfig(EngineBenchConfig):
    """conf/common/serving/bench/overhead.yaml."""

    batch_sizes: list[int] = spec(nonempty=True, ge=1)
    prompt_len: int = spec(ge=1)
    new_tokens: int = spec(ge=2)  # one prefill token, the rest decode steps
    repeats: int = spec(ge=1)  # interleaved runs of each variant
    out: str = spec(free="the JSON file the rows go to")


def timing_overhead(
    engine, monitor, batch_size: int, prompt_len: int, new_tokens: int, repeats: int, seed: int = 0
) -> dict:
    """One batch size's row: the harness's overhead in % of a bare run.

    Both by A/B timing (median and best of `repeats` interleaved runs) and by its components (µs per step mark
    and per window pair, scaled to one run).
    """
    import numpy as np
    import torch

    from common.serving.bench.record import random_prompts
    from common.serving.harness import SteadyWindows
    from common.serving.hf_engine import StepTimer

    prompts = random_prompts(batch_size, prompt_len, engine.lm.config.vocab_size, seed)
    cuda = engine.device.type == "cuda"

    def wall(fn) -> float:
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def harnessed():
        monitor.begin_window("overhead")
        engine.run(prompts, new_tokens, hook=SteadyWindows(monitor, "overhead"))
        monitor.end_window("overhead")

    engine.run(prompts, 2)
    n_calls = 2000
    timer = StepTimer(engine.device, engine.timing)
    timer.start()
    mark_s = wall(lambda: [timer.mark() for _ in range(n_calls)]) / n_calls
    timer.stop()
    windows_s = wall(lambda: [harness_windows(monitor) for _ in range(n_calls // 10)]) / (n_calls // 10)
    bare, timed = [], []
    for _ in range(repeats):
        bare.append(wall(lambda: engine.run(prompts, new_tokens, per_step_timing=False)))
        timed.append(wall(harnessed))
    return {
        "batch_size": batch_size,
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "bare_s_median": float(np.median(bare)),
        "harness_s_median": float(np.median(timed)),
        "overhead_pct_median": 100 * (float(np.median(timed)) / float(np.median(bare)) - 1),
        "overhead_pct_best": 100 * (min(timed) / min(bare) - 1),
        "mark_us": 1e6 * mark_s,
        "window_pair_us": 1e6 * windows_s,
        # a run: one mark per step, two window pairs (the run's and the steady state's)
        "overhead_pct_components": 100 * (new_tokens * mark_s + 2 * windows_s) / float(np.median(bare)),
        "monitor_backend": monitor.backend.name,
    }


def harness_windows(monitor) -> None:
    """One window's two edges: the unit the components estimate times."""
    monitor.begin_window("edge")
    monitor.end_window("edge")


@entrypoint("common/serving/bench/overhead", schema=OverheadConfig)
def main(cfg, run):
    """Measure the overhead at each of the config's batch sizes; the rows, with provenance, go to `out`."""
    from common.gpu_metrics import Monitor
    from common.serving.bench.record import provenance, write_json
    from common.serving.hf_engine import HFEngine

    engine = HFEngine(cfg.model, device=cfg.device, dtype=cfg.dtype)
    with Monitor("auto") as monitor:
        rows = [
            timing_overhead(engine, monitor, b, cfg.prompt_len, cfg.new_tokens, cfg.repeats)
            for b in cfg.batch_sizes
        ]
    for r in rows:
        log.info(
            "B=%d: overhead %.2f%% (A/B median), %.2f%% (A/B best), %.4f%% (components: mark %.1f us, "
            "window pair %.1f us)",
            r["batch_size"],
            r["overhead_pct_median"],
            r["overhead_pct_best"],
            r["overhead_pct_components"],
            r["mark_us"],
            r["window_pair_us"],
        )
    path = write_json(
        cfg.out,
        {
            "benchmark": "overhead",
            "model": cfg.model,
            "dtype": cfg.dtype,
            **provenance(engine.device),
            "rows": rows,
        },
    )
    log.info("wrote %s", path)
    run.logger.table("overhead", rows)
    return rows


if __name__ == "__main__":
    main()
