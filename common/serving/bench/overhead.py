"""The harness's timing overhead: a run with per-step timing, phase hooks and energy windows open
against the same run with only its two ends timed. The issue asks for < 2%.

Two estimates. A/B: wall time taken outside both variants (so the window edges count too), runs
interleaved, medians and bests compared; on a shared machine other processes make this noisy by a few
percent either way. Components: what the harness adds, timed on its own over many calls (a step mark,
a pair of window edges) and scaled to one run's count of them, over the bare run's time.

    python -m common.serving.bench.overhead [--model opt-16m] [--batch-sizes 1 32]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from common.serving.bench.record import DEFAULT_DIR, provenance, random_prompts, write_json
from common.serving.harness import SteadyWindows
from common.serving.hf_engine import HFEngine, StepTimer

log = logging.getLogger(__name__)


def timing_overhead(engine: HFEngine, monitor, batch_size: int, prompt_len: int, new_tokens: int,
                    repeats: int, seed: int = 0) -> dict:
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
    return {"batch_size": batch_size, "prompt_len": prompt_len, "new_tokens": new_tokens, "repeats": repeats,
            "bare_s_median": float(np.median(bare)), "harness_s_median": float(np.median(timed)),
            "overhead_pct_median": 100 * (float(np.median(timed)) / float(np.median(bare)) - 1),
            "overhead_pct_best": 100 * (min(timed) / min(bare) - 1),
            "mark_us": 1e6 * mark_s, "window_pair_us": 1e6 * windows_s,
            # a run: one mark per step, two window pairs (the run's and the steady state's)
            "overhead_pct_components": 100 * (new_tokens * mark_s + 2 * windows_s) / float(np.median(bare)),
            "monitor_backend": monitor.backend.name}


def harness_windows(monitor) -> None:
    monitor.begin_window("edge")
    monitor.end_window("edge")


def main(argv=None) -> int:
    from common.gpu_metrics import Monitor

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="opt-16m")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(DEFAULT_DIR / "overhead.json"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    engine = HFEngine(args.model, device=args.device, dtype=args.dtype)
    with Monitor("auto") as monitor:
        rows = [timing_overhead(engine, monitor, b, args.prompt_len, args.new_tokens, args.repeats)
                for b in args.batch_sizes]
    for r in rows:
        log.info("B=%d: overhead %.2f%% (A/B median), %.2f%% (A/B best), %.4f%% (components: mark %.1f us, "
                 "window pair %.1f us)", r["batch_size"], r["overhead_pct_median"], r["overhead_pct_best"],
                 r["overhead_pct_components"], r["mark_us"], r["window_pair_us"])
    path = write_json(args.out, {"benchmark": "overhead", "model": args.model, "dtype": args.dtype,
                                 **provenance(engine.device), "rows": rows})
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
