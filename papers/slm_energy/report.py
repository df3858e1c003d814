"""The slm_energy report: the Pareto batch, its memory and energy, the roofline's prediction on the
paper's GPUs, and replication, computed now from the saved results (the same table code the figures
command writes results_<scale>.md with). Nothing is read from the README.

    python -m papers.slm_energy.report [scale=paper] [wandb=true]    (make report-slm_energy)
"""

from __future__ import annotations

from pathlib import Path

import papers.slm_energy.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.report import Figure, LinePlot, Report, Section, Table, run_report, store_tables

CLAIM = """The paper (arXiv 2404.03353) finds that small language models reach their Pareto-optimal
throughput at a batch that needs a small share of one accelerator's memory (large-batch decode is not
compute-bound, as is often assumed), and that running several replicas of the model on that device
uses it better than one instance at its best batch. Below: B\\* measured on this project's hardware (the
table says which), the memory it needs, the energy per token where a counter was readable, the
roofline's B\\* for the paper's A100 and H100 (a prediction, never a measurement), and the replication
gain. This project has no published SLM measurements to copy: the paper's results are compared by its
claims, not by its numbers."""


def build(results_dir: Path, scale: str, figures_dir: Path) -> Report:
    """The report's sections from whatever results exist at `scale` (and any GPU check's)."""
    from papers.slm_energy import figures as fg

    found = fg.sources(results_dir / "slm_energy", results_dir / "gpu", scale, figures_dir)
    here = next((s for s in found if s["name"].startswith("this machine")), None)
    bench = "\n".join(fg.benchmark_rows(here["pareto"])) if here and here["pareto"] else ""
    # energy is drawn where a counter was read; the table's last line says why it was not
    measured = bool(
        here and here["pareto"] and len(fg.energy_missing(here["pareto"])) < len(here["pareto"]["models"])
    )
    repl = "\n".join(fg.replication_rows(here["replication"])) if here and here["replication"] else ""
    gpu_sections = [
        Section(
            s["name"],
            tables=[
                Table(
                    "Benchmark and replication",
                    markdown="\n\n".join(
                        filter(
                            None,
                            (
                                "\n".join(fg.benchmark_rows(s["pareto"])) if s["pareto"] else "",
                                "\n".join(fg.replication_rows(s["replication"])) if s["replication"] else "",
                            ),
                        )
                    ),
                    note="Measured by `make gpu-check` (`papers.slm_energy.gpu_bench`) and committed under "
                    "results/gpu/.",
                )
            ],
        )
        for s in found
        if s is not here
    ]
    sections = [
        Section("The claim", prose=CLAIM),
        Section(
            "Throughput, latency and energy frontiers: the Pareto batch",
            tables=[
                Table(
                    "B* per model, its memory, energy and the roofline's prediction",
                    markdown=bench,
                    sources=["benchmark"],
                    empty="run `python -m papers.slm_energy.benchmark`",
                )
            ],
            figures=[
                Figure("frontier_latency", "throughput against latency, frontier marked"),
                *([Figure("frontier_energy", "throughput against energy per token")] if measured else []),
                Figure("pareto_memory", "memory at B* against the device's capacity"),
                Figure("roofline_pareto", "the roofline's B* on the paper's GPUs (predicted)"),
            ],
        ),
        Section(
            "Replication: k instances against one at its best batch",
            tables=[
                Table(
                    "Throughput and latency of k instances",
                    markdown=repl,
                    sources=["replication"],
                    empty="run `python -m papers.slm_energy.replication`",
                )
            ],
            figures=[Figure("replication")],
        ),
        *gpu_sections,
        Section("Every result store", tables=store_tables(results_dir, "slm_energy", scale)),
    ]
    plots = [
        LinePlot(
            "benchmark",
            "cell/batch_size",
            ["metrics/output_throughput_tok_s", "metrics/e2e_ms_mean"],
            "throughput and latency against the batch",
        )
    ]
    return Report(
        "slm_energy",
        f"Towards Pareto Optimal Throughput in SLM Serving: reproduction ({scale})",
        intro="",
        sections=sections,
        plots=plots,
    )


@entrypoint("slm_energy/report")
def main(cfg, run):
    """`make report-slm_energy`: the report from the saved results (figures from the figures command)."""
    figures_dir = Path(cfg.paths.figures_dir) / cfg.paper
    return str(run_report(build(Path(cfg.paths.results_dir), cfg.scale.name, figures_dir), cfg, run))


if __name__ == "__main__":
    main()
