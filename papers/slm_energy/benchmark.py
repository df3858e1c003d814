"""The SLM benchmark: models of increasing size x batch sizes x lengths, then each model's Pareto point.

    python -m papers.slm_energy.benchmark                          # small models on this CPU
    python -m papers.slm_energy.benchmark scale=paper engine=vllm  # the OPT family on one GPU

Cells go to <result_dir>/results.jsonl (rerun-safe), the Pareto analysis to <result_dir>/pareto.json.
"""

from __future__ import annotations

from omegaconf import OmegaConf

import papers.slm_energy.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.serving.harness import settings_from_config
from papers.slm_energy.analysis import Settings
from papers.slm_energy.runner import make_plan, run_benchmark, workload_spec


def plan_from_config(cfg):
    r = cfg.roofline
    settings = Settings(tolerance=cfg.tolerance, latency_metric=cfg.latency_metric,
                        roofline_devices=tuple(r.devices), roofline_dtype=r.dtype,
                        memory_utilization=r.memory_utilization, max_batch=r.max_batch,
                        predict_models=tuple(r.models), predict_prompt_len=r.prompt_len,
                        predict_output_len=r.output_len)
    workloads = [workload_spec(w, f"workloads[{i}]") for i, w in enumerate(cfg.workloads)]
    return make_plan(list(cfg.models), list(cfg.batch_sizes), workloads, settings,
                     max_batch=OmegaConf.to_container(cfg.max_batch), **settings_from_config(cfg))


@entrypoint("slm_energy/benchmark")
def main(cfg, run):
    plan = plan_from_config(cfg)
    summary = run_benchmark(plan, run.results, run.result_dir, run.info["hardware"], cfg.scale.name,
                            progress=cfg.progress)
    run.logger.table("pareto", [{"model": g["model"], "workload": g["workload"], **{
        k: v for k, v in g["pareto"].items() if not isinstance(v, list)}} for g in summary["models"]])
    return summary


if __name__ == "__main__":
    main()
