"""Where decode time goes as the batch grows (paper Fig. 5): attention, matmul, other kernels, CPU gaps.

    python -m papers.batching.breakdown                 # ~16M OPT on this CPU: aten ops' self time
    python -m papers.batching.breakdown scale=paper     # the paper's four models on a GPU: CUDA kernels

common.serving.kernels profiles a few decode steps of one static batch on the hf engine with
torch.profiler and sorts the time into the paper's classes. One result row per (model, batch size) in
<result_dir>/results.jsonl, so a rerun skips finished cells and an out-of-memory batch is recorded as
failed while the rest goes on. The paper's Fig. 5 comes from Nsight Systems on vLLM; here the engine is
the hf one whatever engine the sweep used, because the profiler hooks into its decode loop.
"""

from __future__ import annotations

import logging

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.errors import BadInput
from common.results import STATUS_FAILED

log = logging.getLogger(__name__)


def cells_for(cfg, device: str) -> dict[str, list[dict]]:
    """model -> its cells; every parameter that changes what is measured is in the key."""
    return {
        m: [
            {
                "model": m,
                "engine": "hf",
                "dtype": cfg.dtype,
                "device": device,
                "batch_size": int(b),
                "prompt_len": int(cfg.prompt_len),
                "decode_steps": int(cfg.decode_steps),
            }
            for b in cfg.batch_sizes
        ]
        for m in cfg.models
    }


def check(cfg) -> None:
    from common.serving.models import ARCHS, DTYPES, SMOLLM2

    unknown = [m for m in cfg.models if m not in ARCHS and m != SMOLLM2 and "/" not in m]
    if unknown:
        raise BadInput(f"models: {unknown} are not built-in ({', '.join(ARCHS)}, {SMOLLM2}) nor hub names")
    if cfg.dtype not in DTYPES:
        raise BadInput(f"dtype: {cfg.dtype!r} is not one of {sorted(DTYPES)}")
    if not cfg.batch_sizes or min(cfg.batch_sizes) < 1:
        raise BadInput(f"batch_sizes: {list(cfg.batch_sizes)} must be a non-empty list of sizes >= 1")
    if cfg.prompt_len < 1 or cfg.decode_steps < 1:
        raise BadInput("prompt_len and decode_steps must be >= 1")


@entrypoint("batching/breakdown")
def main(cfg, run):
    import torch
    from rich.progress import Progress

    from common.serving.hf_engine import HFEngine
    from common.serving.kernels import kernel_breakdown
    from common.serving.models import resolve_device

    check(cfg)
    device = resolve_device(cfg.device).type
    per_model = cells_for(cfg, device)
    total = sum(len(c) for c in per_model.values())
    log.info(
        "breakdown: %s x batch %s, %d decode steps after a %d-token prompt, on %s (%s)",
        list(cfg.models),
        list(cfg.batch_sizes),
        cfg.decode_steps,
        cfg.prompt_len,
        run.info["hardware"]["device"],
        device,
    )
    with Progress(disable=not cfg.progress) as bar:
        task = bar.add_task(
            "profiler breakdown",
            total=total,
            completed=sum(run.results.done(c) for cells in per_model.values() for c in cells),
        )
        for model, cells in per_model.items():
            todo = [c for c in cells if not run.results.done(c)]
            if not todo:
                continue
            try:
                engine = HFEngine(model, device=cfg.device, dtype=cfg.dtype)
            except Exception as err:  # noqa: BLE001 - a model that cannot load fails its cells, not the run
                for cell in todo:
                    run.results.append(cell, STATUS_FAILED, error=f"engine for {model}: {err!r}")
                    bar.advance(task)
                continue
            device_name = engine.describe()["device_name"]
            for cell in todo:
                bar.update(task, description=f"{model} B={cell['batch_size']}")

                def measure(cell=cell, engine=engine, name=device_name):
                    out = kernel_breakdown(
                        engine, cell["batch_size"], cfg.prompt_len, cfg.decode_steps, cfg.seed
                    )
                    return {**out, "device_name": name}

                row = run.results.run_cell(cell, measure)
                if row and row["status"] == "ok":
                    m = row["metrics"]
                    log.info(
                        "%s B=%d: attention %.0f%%, matmul %.0f%%, other %.0f%%, gaps %.0f%% of %.1f ms/step",
                        model,
                        cell["batch_size"],
                        100 * m["attention_share"],
                        100 * m["matmul_share"],
                        100 * m["other_share"],
                        100 * m["gap_share"],
                        m["step_ms"],
                    )
                elif row:
                    log.warning("%s B=%d failed: %s", model, cell["batch_size"], row["error"])
                    if device == "cuda":  # an out-of-memory batch leaves cached blocks behind
                        torch.cuda.empty_cache()
                bar.advance(task)
            engine.close()
    frame = run.results.load(status=None)
    run.logger.table("breakdown", frame)
    return frame


if __name__ == "__main__":
    main()
