"""One decode step of the hf engine inside an NVTX range "decode_step", for Nsight Compute.

scripts/ncu_decode.sh runs this under `ncu --nvtx --nvtx-include decode_step/`, so only the kernels of
that one forward are replayed and measured (DRAM throughput and achieved occupancy per kernel), then
`--summarise` reads ncu's CSV into attention / matmul / other classes (serving.kernels).

    python -m common.serving.bench.decode_step --model opt-1.3b --batch 64
    python -m common.serving.bench.decode_step --summarise ncu.csv --out ncu.json
"""

from __future__ import annotations

import argparse
import json

from common.serving.bench.record import random_prompts, write_json


def run_one_step(model: str, batch: int, prompt_len: int, step: int, dtype: str, device: str) -> None:
    """Prefill, `step - 1` decode steps, then decode step `step` inside the NVTX range."""
    import torch

    from common.serving.hf_engine import HFEngine

    engine = HFEngine(model, device=device, dtype=dtype)
    prompts = random_prompts(batch, prompt_len, engine.lm.config.vocab_size)
    engine.run(prompts, 2)  # warm-up outside the profiled forward
    calls = {"n": 0}
    nvtx = torch.cuda.nvtx if engine.device.type == "cuda" else None

    def before(module, args, kwargs):
        if calls["n"] == step and nvtx is not None:
            nvtx.range_push("decode_step")

    def after(module, args, kwargs, output):
        if calls["n"] == step and nvtx is not None:
            nvtx.range_pop()
        calls["n"] += 1

    engine.lm.model.register_forward_pre_hook(before, with_kwargs=True)
    engine.lm.model.register_forward_hook(after, with_kwargs=True)
    engine.run(prompts, step + 1)
    print(json.dumps({"model": model, "batch": batch, "prompt_len": prompt_len, "profiled_step": step,
                      "forwards": calls["n"], "device": engine.device.type}))


def main(argv=None) -> int:
    from common.serving.kernels import summarise_ncu_csv

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="opt-1.3b")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=161)  # the paper's offline profiler
    p.add_argument("--step", type=int, default=4, help="which decode step to profile (the prefill is 0)")
    p.add_argument("--dtype", default="fp16")
    p.add_argument("--device", default="auto")
    p.add_argument("--summarise", default=None, help="an ncu --csv log to summarise instead of running")
    p.add_argument("--out", default=None, help="with --summarise: JSON file to write")
    args = p.parse_args(argv)
    if args.summarise:
        summary = {"source": args.summarise, "classes": summarise_ncu_csv(args.summarise)}
        if args.out:
            write_json(args.out, summary)
        print(json.dumps(summary, indent=2))
        return 0
    run_one_step(args.model, args.batch, args.prompt_len, args.step, args.dtype, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
