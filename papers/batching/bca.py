"""The Batching Configuration Advisor on this project's sweep and on the authors' sweeps, as one step.

    python -m papers.batching.bca                 # after python -m papers.batching.sweep
    python -m papers.batching.bca epsilon=0       # any advise setting, for every run

A thin hydra wrapper around `python -m papers.batching.advise` (the practitioner's command, whose rule
and memory plan live in bca.py), so the reproduction can run it locally or as a SLURM step like the
other experiments. Each run prints the advisor's table and writes <result_dir>/bca_<name>.json (every
point, the settings) and bca_<name>.md (the summary table the README shows); summary.json lists B_opt,
the memory to allocate and the memory freed per curve of every run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from papers.batching import advise
from papers.batching.study import device_memory

log = logging.getLogger(__name__)
OWN = "own_sweep"
SUMMARY_KEYS = ("b_opt", "b_opt_cap", "throughput", "fraction_of_best", "latency_ms", "slo_ms")
MEMORY_KEYS = ("kv_gib", "footprint_gib", "gpu_memory_utilization", "freed_gib", "freed_pct", "replicas",
               "device_gib")


def own_device_gib(sweep: Path, given: float | None) -> tuple[float, str]:
    """The memory the own sweep's plan divides: the user's, else the sweep device's (host RAM on a CPU)."""
    if given is not None:
        if not given > 0:
            raise BadInput(f"device_mem_gib: {given} must be positive")
        return float(given), "device_mem_gib"
    frame, _ = advise.read_sweep(sweep)
    names = frame.get("device_name", pd.Series(dtype=str)).dropna().unique()
    if len(names) != 1:
        raise BadInput(f"device_mem_gib: {sweep} has devices {list(names)}; give the memory explicitly")
    nbytes, source = device_memory(str(names[0]))
    if nbytes is None:
        raise BadInput(f"device_mem_gib: {source}; give the device memory in GiB")
    return nbytes / 2**30, f"{names[0]}: {source}"


def settings_args(cfg) -> list[str]:
    return ["--latency", cfg.latency, "--slo-factor", str(cfg.slo_factor), "--ref-batch", str(cfg.ref_batch),
            "--epsilon", str(cfg.epsilon)]


def brief(results: list[dict]) -> list[dict]:
    """Per curve: the choice and its memory plan, or the error."""
    out = []
    for r in results:
        if "error" in r:
            out.append({"label": r["label"], "error": r["error"]})
            continue
        out.append({"label": r["label"], **{k: r[k] for k in SUMMARY_KEYS},
                    **{k: r["memory"][k] for k in MEMORY_KEYS}, "preempted": bool(r.get("preempted"))})
    return out


def advise_run(name: str, argv: list[str], out_dir: Path) -> dict:
    log.info("BCA %s: python -m papers.batching.advise %s", name, " ".join(argv))
    results, settings, _ = advise.run(argv)
    advise.print_results(results, settings)
    body = json.dumps({"settings": settings, "results": results}, indent=2)
    write_atomic(out_dir / f"bca_{name}.json", body + "\n")
    write_atomic(out_dir / f"bca_{name}.md", advise.markdown_table(results))
    return {"status": "ok", "argv": argv, "settings": settings, "curves": brief(results)}


@entrypoint("batching/bca")
def main(cfg, run):
    common = settings_args(cfg)
    summary = {"hardware": run.info["hardware"]["device"], "runs": {}}
    own = Path(cfg.own_sweep)
    if own.is_file():
        gib, source = own_device_gib(own, cfg.device_mem_gib)
        summary["runs"][OWN] = advise_run(OWN, [str(own), *common, "--device-mem-gib", f"{gib:.3f}"],
                                          run.result_dir)
        summary["runs"][OWN]["device_memory_source"] = source
    else:
        reason = f"{own} does not exist: run python -m papers.batching.sweep first (same scale)"
        log.warning("BCA on this project's sweep skipped: %s", reason)
        summary["runs"][OWN] = {"status": "missing", "reason": reason}
    for name, extra in cfg.authors_runs.items():
        summary["runs"][name] = advise_run(name, [*common, *extra], run.result_dir)
    write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    for name, r in summary["runs"].items():
        for c in r.get("curves", []):
            if "error" not in c:
                log.info("%s / %s: B_opt %g (cap %g, %.0f%% of the best throughput), allocate %.2f GiB, "
                         "frees %.2f GiB (%.1f%%)", name, c["label"], c["b_opt"], c["b_opt_cap"],
                         100 * c["fraction_of_best"], c["footprint_gib"], c["freed_gib"], c["freed_pct"])
    return summary


if __name__ == "__main__":
    main()
