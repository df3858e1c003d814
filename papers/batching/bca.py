"""The Batching Configuration Advisor on this project's sweep and on the authors' sweeps, as one step.

    python -m papers.batching.bca                        # after python -m papers.batching.sweep
    python -m papers.batching.bca advise.epsilon=0       # any advise setting, for every run
    python -m papers.batching.bca authors_runs.advisor.model=opt-1.3b   # or for one run

Each run is a papers.batching.advisor.SweepSettings, the dataclass `python -m papers.batching.advise`
generates its flags from: `advise` holds the settings every run starts from, and each entry of
`authors_runs` only what differs (conf/batching/bca.yaml). All runs are checked before the first is
computed. Each run prints the advisor's table and writes <result_dir>/bca_<name>.json (every point, the
settings) and bca_<name>.md (the summary table the README shows); summary.json lists, per run, the
equivalent advise command line, the settings, and per curve B_opt, the memory to allocate and the
memory freed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.cli import from_mapping, to_argv
from common.errors import BadInput
from papers.batching.advisor import SweepSettings

log = logging.getLogger(__name__)
OWN = "own_sweep"
SUMMARY_KEYS = ("b_opt", "b_opt_cap", "throughput", "fraction_of_best", "latency_ms", "slo_ms")
MEMORY_KEYS = (
    "kv_gib",
    "footprint_gib",
    "gpu_memory_utilization",
    "freed_gib",
    "freed_pct",
    "replicas",
    "device_gib",
)


def own_device_gib(sweep: Path, given: float | None) -> tuple[float, str]:
    """The memory the own sweep's plan divides: the user's, else the sweep device's (host RAM on a CPU)."""
    import pandas as pd

    from papers.batching.advisor import read_sweep
    from papers.batching.study import device_memory

    if given is not None:
        if not given > 0:
            raise BadInput(f"device_mem_gib: {given} must be positive")
        return float(given), "device_mem_gib"
    frame, _ = read_sweep(sweep)
    names = frame.get("device_name", pd.Series(dtype=str)).dropna().unique()
    if len(names) != 1:
        raise BadInput(f"device_mem_gib: {sweep} has devices {list(names)}; give the memory explicitly")
    nbytes, source = device_memory(str(names[0]))
    if nbytes is None:
        raise BadInput(f"device_mem_gib: {source}; give the device memory in GiB")
    return nbytes / 2**30, f"{names[0]}: {source}"


def brief(results: list[dict]) -> list[dict]:
    """Per curve: what `advise --json` prints (advisor.curve_summary), with the choice's throughput
    keys as the figures read them; the error instead where the curve failed."""
    from papers.batching.advisor import curve_summary

    out = []
    for r in results:
        if "error" in r:
            out.append(curve_summary(r))
            continue
        memory = r.get("memory") or {}
        out.append(
            {**curve_summary(r), **{k: r[k] for k in SUMMARY_KEYS}, **{k: memory.get(k) for k in MEMORY_KEYS}}
        )
    return out


def advise_run(name: str, options: dict, out_dir: Path) -> dict:
    """One run: the advisor on `options` (SweepSettings fields), its table printed and saved."""
    from papers.batching import advise, advisor

    argv = to_argv(SweepSettings, options)
    log.info("BCA %s: python -m papers.batching.advise %s", name, " ".join(argv))
    results, settings = advisor.advise_sweep(from_mapping(SweepSettings, options, name))
    advise.print_results(results, settings)
    body = json.dumps({"settings": settings, "results": results}, indent=2)
    write_atomic(out_dir / f"bca_{name}.json", body + "\n")
    write_atomic(out_dir / f"bca_{name}.md", advise.markdown_table(results))
    return {"status": "ok", "argv": argv, "settings": settings, "curves": brief(results)}


def runs_of(cfg) -> dict[str, dict]:
    """name -> the SweepSettings fields of each authors' run, every one checked by the dataclass."""
    from omegaconf import OmegaConf

    runs = {name: OmegaConf.to_container(node, resolve=True) for name, node in cfg.authors_runs.items()}
    for name, options in runs.items():
        from_mapping(SweepSettings, options, f"authors_runs.{name}").inputs()
    return runs


@entrypoint("batching/bca")
def main(cfg, run):
    from omegaconf import OmegaConf

    shared = OmegaConf.to_container(cfg.advise, resolve=True)
    from_mapping(SweepSettings, shared, "advise")
    authors = runs_of(cfg)
    summary = {"hardware": run.info["hardware"]["device"], "runs": {}}
    own = Path(cfg.own_sweep)
    if own.is_file():
        gib, source = own_device_gib(own, cfg.device_mem_gib)
        # to 0.001 GiB, as the plan has always been given it (the settings record shows this number)
        options = {**shared, "sweep": str(own), "device_mem_gib": float(f"{gib:.3f}")}
        summary["runs"][OWN] = advise_run(OWN, options, run.result_dir)
        summary["runs"][OWN]["device_memory_source"] = source
    else:
        reason = f"{own} does not exist: run python -m papers.batching.sweep first (same scale)"
        log.warning("BCA on this project's sweep skipped: %s", reason)
        summary["runs"][OWN] = {"status": "missing", "reason": reason}
    for name, options in authors.items():
        summary["runs"][name] = advise_run(name, options, run.result_dir)
    write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    for name, r in summary["runs"].items():
        for c in r.get("curves", []):
            if "error" not in c and c.get("freed_gib") is None:
                log.info(
                    "%s / %s: B_opt %g (cap %g); no memory plan (%s)",
                    name,
                    c["label"],
                    c["b_opt"],
                    c["b_opt_cap"],
                    c["memory_missing"],
                )
            elif "error" not in c:
                log.info(
                    "%s / %s: B_opt %g (cap %g, %.0f%% of the best throughput), allocate %.2f GiB, "
                    "frees %.2f GiB (%.1f%%)",
                    name,
                    c["label"],
                    c["b_opt"],
                    c["b_opt_cap"],
                    100 * c["fraction_of_best"],
                    c["footprint_gib"],
                    c["freed_gib"],
                    c["freed_pct"],
                )
    return summary


if __name__ == "__main__":
    main()
