"""The serving sweep as the batching paper's experiment: models x batch sizes on one workload.

    python -m papers.batching.sweep                 # ~16M OPT on this CPU, batch 1..128
    python -m papers.batching.sweep scale=paper     # the paper's four models, batch 1..512, fp16, GPU

Rows go to <result_dir>/results.jsonl (one per cell, rerun-safe); summary.json in the run dir says on
what hardware it ran and how throughput scaled with the batch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import papers.batching.config  # noqa: F401 - registers the schema
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.serving.harness import SweepSpec, run_sweep, scaling_summary, settings_from_config
from common.serving.models import ARCHS, DTYPES, SMOLLM2
from common.serving.workloads import KINDS, WorkloadSpec

log = logging.getLogger(__name__)


def spec_from_config(cfg) -> SweepSpec:
    """SweepSpec from the config, every user-fixable value checked with its key named."""
    unknown = [m for m in cfg.models if m not in ARCHS and m != SMOLLM2 and "/" not in m]
    if unknown:
        raise BadInput(f"models: {unknown} are not built-in ({', '.join(ARCHS)}, {SMOLLM2}); "
                       "a real checkpoint is a hub name (org/name) or a local path")
    if cfg.engine not in ("hf", "vllm"):
        raise BadInput(f"engine: {cfg.engine!r} is not hf or vllm")
    if cfg.dtype not in DTYPES:
        raise BadInput(f"dtype: {cfg.dtype!r} is not one of {sorted(DTYPES)}")
    if not cfg.batch_sizes or min(cfg.batch_sizes) < 1:
        raise BadInput(f"batch_sizes: {list(cfg.batch_sizes)} must be a non-empty list of sizes >= 1")
    w = cfg.workload
    if w.kind not in KINDS:
        raise BadInput(f"workload.kind: {w.kind!r} is not one of {KINDS}")
    if w.kind == "sharegpt" and not w.sharegpt_path:
        raise BadInput("workload.sharegpt_path: kind=sharegpt needs a local ShareGPT JSON file")
    if w.kind == "sharegpt" and not Path(w.sharegpt_path).is_file():
        raise BadInput(f"workload.sharegpt_path: {w.sharegpt_path} is not a file")
    if min(cfg.repeats, cfg.num_batches) < 1 or cfg.warmup < 0:
        raise BadInput("repeats and num_batches must be >= 1 and warmup >= 0")
    return SweepSpec(models=list(cfg.models), batch_sizes=list(cfg.batch_sizes),
                     workloads=[WorkloadSpec(w.kind, w.prompt_len, w.output_len, w.sharegpt_path, w.seed)],
                     **settings_from_config(cfg))


@entrypoint("batching/sweep")
def main(cfg, run):
    spec = spec_from_config(cfg)
    frame = run_sweep(spec, run.results, run.result_dir, progress=cfg.progress)
    summary = scaling_summary(frame)
    hardware = run.info["hardware"]["device"]
    for s in summary:
        log.info("%s on %s: throughput x%.1f from B=%d to B=%d (x%d more sequences; %s)", s["model"],
                 s["device_name"], s["throughput_gain"], s["batch_min"], s["batch_max"], s["batch_ratio"],
                 "sublinear" if s["sublinear"] else "NOT sublinear")
    write_atomic(run.dir / "summary.json", json.dumps({"hardware": hardware, "scaling": summary}, indent=2))
    run.logger.table("sweep", frame)
    return summary


if __name__ == "__main__":
    main()
