"""The serving sweep as the batching paper's experiment: models x batch sizes on one workload.

    python -m papers.batching.sweep                 # ~16M OPT on this CPU, batch 1..128
    python -m papers.batching.sweep scale=paper     # the paper's four models, batch 1..512, fp16, GPU

Rows go to <result_dir>/results.jsonl (one per cell, rerun-safe); summary.json in the run dir says on
what hardware it ran and how throughput scaled with the batch. The serving keys (engine, dtype,
workload, ...) are those of every serving command (common.serving.config).
"""

from __future__ import annotations

import json
import logging

import papers.batching.config  # noqa: F401 - registers the schema
from common.app import entrypoint
from common.atomic import write_atomic
from common.serving import config as serving

log = logging.getLogger(__name__)


def spec_from_config(cfg):
    """SweepSpec from the (validated) config."""
    from common.serving.harness import SweepSpec

    return SweepSpec(
        models=list(cfg.models),
        batch_sizes=list(cfg.batch_sizes),
        workloads=[serving.workload_spec(cfg.workload)],
        **serving.sweep_settings(cfg),
    )


@entrypoint("batching/sweep", x_axis="batch_size")
def main(cfg, run):
    from common.serving.harness import run_sweep, scaling_summary

    spec = spec_from_config(cfg)
    frame = run_sweep(spec, run.results, run.result_dir, progress=cfg.progress)
    summary = scaling_summary(frame)
    hardware = run.info["hardware"]["device"]
    for s in summary:
        log.info(
            "%s on %s: throughput x%.1f from B=%d to B=%d (x%d more sequences; %s)",
            s["model"],
            s["device_name"],
            s["throughput_gain"],
            s["batch_min"],
            s["batch_max"],
            s["batch_ratio"],
            "sublinear" if s["sublinear"] else "NOT sublinear",
        )
    write_atomic(run.dir / "summary.json", json.dumps({"hardware": hardware, "scaling": summary}, indent=2))
    run.logger.table("sweep", frame)
    return summary


if __name__ == "__main__":
    main()
