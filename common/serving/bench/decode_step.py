"""One decode step of the hf engine inside an NVTX range "decode_step", for Nsight Compute.

scripts/ncu_decode.sh runs this under `ncu --nvtx --nvtx-include decode_step/`, so only the kernels of
that one forward are replayed and measured (DRAM throughput and achieved occupancy per kernel); then
`summarise=<csv>` reads ncu's CSV into attention / matmul / other classes (serving.kernels). It runs on
the GPU nodes, where hydra is absent (common.plain_config reads the same config there).

    python -m common.serving.bench.decode_step model=opt-1.3b batch=64
    python -m common.serving.bench.decode_step summarise=ncu.csv out=ncu.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from common.app import entrypoint
from common.errors import BadInput
from common.schema import spec
from common.serving.config import EngineBenchConfig


@dataclass
class DecodeStepConfig(EngineBenchConfig):
    """conf/common/serving/bench/decode_step.yaml."""

    batch: int = spec(ge=1)
    prompt_len: int = spec(ge=1)
    step: int = spec(ge=1)  # which decode step is profiled (the prefill is 0)
    summarise: Optional[str] = spec(None, free="an `ncu --csv` log to summarise instead of running")
    out: Optional[str] = spec(None, free="with summarise: the JSON file to write")

    def check(self) -> None:
        """Only a run needs a model and a device; summarising needs the ncu CSV (BadInput if not a file)."""
        if self.summarise is None:
            super().check()  # a model and a device are needed only to run
        elif not Path(self.summarise).is_file():
            raise BadInput(f"summarise: {self.summarise} is not a file (an `ncu --csv` log)")


def run_one_step(model: str, batch: int, prompt_len: int, step: int, dtype: str, device: str) -> dict:
    """Prefill, `step - 1` decode steps, then decode step `step` inside the NVTX range."""
    import torch

    from common.serving.bench.record import random_prompts
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
    return {
        "model": model,
        "batch": batch,
        "prompt_len": prompt_len,
        "profiled_step": step,
        "forwards": calls["n"],
        "device": engine.device.type,
    }


@entrypoint("common/serving/bench/decode_step", schema=DecodeStepConfig, plain=True)
def main(cfg, run):
    """Profile one decode step, or with summarise=<csv> print ncu's export by kernel class (and save it)."""
    if cfg.summarise:
        from common.serving.bench.record import write_json
        from common.serving.kernels import summarise_ncu_csv

        summary = {"source": cfg.summarise, "classes": summarise_ncu_csv(cfg.summarise)}
        if cfg.out:
            write_json(cfg.out, summary)
        print(json.dumps(summary, indent=2), flush=True)
        return summary
    done = run_one_step(cfg.model, cfg.batch, cfg.prompt_len, cfg.step, cfg.dtype, cfg.device)
    print(json.dumps(done), flush=True)
    return done


if __name__ == "__main__":
    main()
