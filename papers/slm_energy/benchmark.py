"""The SLM benchmark: models of increasing size x batch sizes x lengths, then each model's Pareto point.

    python -m papers.slm_energy.benchmark                          # small models on this CPU
    python -m papers.slm_energy.benchmark scale=paper engine=vllm  # the OPT family on one GPU

Cells go to <result_dir>/results.jsonl (rerun-safe), the Pareto analysis to <result_dir>/pareto.json.
The serving keys (engine, dtype, workloads, ...) are those of every serving command
(common.serving.config).
"""

from __future__ import annotations

import papers.slm_energy.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.serving import config as serving


def plan_from_config(cfg):
    """The benchmark's plan from its (validated) config."""
    from papers.slm_energy.analysis import settings_from_config
    from papers.slm_energy.runner import make_plan

    workloads = [serving.workload_spec(w, f"workloads[{i}]") for i, w in enumerate(cfg.workloads)]
    return make_plan(
        list(cfg.models),
        list(cfg.batch_sizes),
        workloads,
        settings_from_config(cfg),
        max_batch=serving.plain(cfg.max_batch),
        **serving.sweep_settings(cfg),
    )


@entrypoint("slm_energy/benchmark", x_axis="batch_size")
def main(cfg, run):
    from common.hardware import profile_dir
    from papers.slm_energy.runner import run_benchmark

    plan = plan_from_config(cfg)
    summary = run_benchmark(
        plan,
        run.results,
        run.result_dir,
        run.info["hardware"],
        cfg.scale.name,
        progress=cfg.progress,
        profile_dir=profile_dir(cfg.paths.results_dir),
    )
    run.logger.table(
        "pareto",
        [
            {
                "model": g["model"],
                "workload": g["workload"],
                **{k: v for k, v in g["pareto"].items() if not isinstance(v, list)},
            }
            for g in summary["models"]
        ],
    )
    return summary


if __name__ == "__main__":
    main()
