"""The batching report: the memory gap and the BCA, computed now from the saved results beside the
authors' H100 measurements (papers/batching/reference), with the runs' provenance. The tables come from
the same code as the figures command's results_<scale>.md; nothing is read from the README.

    python -m papers.batching.report [scale=paper] [wandb=true]    (make report-batching)
"""

from __future__ import annotations

import re
from pathlib import Path

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.report import Figure, LinePlot, Report, Section, Table, run_report, store_tables

CLAIM = """Mind the Memory Gap (arXiv 2503.08311) finds that large-batch LLM decode stays memory-bound:
throughput plateaus long before the KV cache fills the GPU, so the Batching Configuration Advisor (BCA)
can pick the batch past which batching stops paying and free the rest of the memory, e.g. for more
replicas of the model. The authors measured on one H100 64 GB with vLLM; this project's own sweeps run
wherever the run table says (a CPU unless a GPU row appears), and every table below names its source."""
AUTHORS = "the authors' H100 64 GB vLLM sweeps (papers/batching/reference, provenance in its README)"


def _chunks(markdown: str) -> dict[str, str]:
    """results_table's markdown cut at its `## ` headings: heading -> body."""
    parts = re.split(r"^## (.+)$", markdown, flags=re.M)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}


def _table(chunks: dict, prefix: str, sources: list[str], **kw) -> list[Table]:
    return [
        Table(title, markdown=body, sources=sources, **kw)
        for title, body in chunks.items()
        if title.startswith(prefix)
    ]


def build(results_dir: Path, scale: str) -> Report:
    """The report's sections from whatever batching results exist at `scale`."""
    from papers.batching import figures as fg

    found = fg.load(results_dir / "batching", scale)
    chunks = _chunks(fg.results_table(found, scale)) if found else {}
    bca_tables = []
    if "bca" in found:
        from papers.batching.advise import markdown_table

        for name, run in found["bca"].items():
            bca_tables.append(
                Table(
                    f"BCA: {name}",
                    markdown=markdown_table(run["results"]),
                    sources=["bca"],
                    reference="" if name == "own_sweep" else AUTHORS,
                )
            )
    step = []
    if "calibrate" in found:
        from papers.batching.calibrate import table

        text = table(found["calibrate"], {k: v["goal_pct"] for k, v in found["calibrate"]["goals"].items()})
        step = [
            Table(
                "Step-time MAPE: in-sample, batch-held-out, model-held-out",
                markdown=f"```\n{text}\n```",
                sources=["calibrate"],
                reference=AUTHORS,
            )
        ]
    tune = []
    if "tune" in found:
        t = found["tune"]
        tune = [
            Table(
                "The tuner's choice",
                records=[
                    {
                        k: t.get(k)
                        for k in (
                            "model",
                            "engine",
                            "device",
                            "b_opt",
                            "slo_ms",
                            "stop",
                            "probes",
                            "probe_time_s",
                            "search_time_s",
                        )
                    }
                ],
                sources=["tune"],
            )
        ]
    sections = [
        Section("The claim", prose=CLAIM),
        Section(
            "Figs 2-4: throughput plateaus while memory fills",
            tables=_table(chunks, "Figs 2-4", ["study"], reference=AUTHORS),
            figures=[
                Figure("fig2_throughput_vs_itl"),
                Figure("fig3_throughput_vs_kv"),
                Figure("fig4_prefill_decode"),
                Figure("throughput_scaling_normalised"),
            ],
        ),
        Section(
            "Fig. 5: where decode time goes",
            tables=_table(chunks, "Fig. 5", ["breakdown"]),
            figures=[Figure("fig5_breakdown")],
        ),
        Section(
            "Table I / Fig. 6: Nsight Compute",
            tables=_table(chunks, "Table I", ["ncu"]),
            prose="Measured only on a GPU with Nsight Compute; elsewhere recorded as missing, with why.",
        ),
        Section(
            "The Batching Configuration Advisor (Figs 10-12)",
            tables=bca_tables,
            figures=[Figure("bca_choice"), Figure("bca_memory_freed")],
        ),
        Section(
            "A step-time model that predicts what it was not fitted on",
            tables=step,
            figures=[Figure("step_model_held_out")],
        ),
        Section("The online tuner against the full sweep", tables=tune, figures=[Figure("tune_vs_sweep")]),
        Section(
            "Replication with the BCA's batch",
            tables=_table(chunks, "Replication", ["replicate"]),
            figures=[Figure("replication")],
        ),
        Section("Every result store", tables=store_tables(results_dir, "batching", scale)),
    ]
    plots = [
        LinePlot(
            "sweep",
            "cell/batch_size",
            ["metrics/total_throughput_tok_s", "metrics/itl_ms_mean"],
            "throughput and inter-token latency against the batch",
        ),
        LinePlot(
            "tune", "cell/batch_size", ["metrics/throughput", "metrics/latency_ms"], "the tuner's probes"
        ),
    ]
    return Report(
        "batching", f"Mind the Memory Gap: reproduction ({scale})", intro="", sections=sections, plots=plots
    )


@entrypoint("batching/report")
def main(cfg, run):
    """`make report-batching`: the report from the saved results (figures from the figures command)."""
    return str(run_report(build(Path(cfg.paths.results_dir), cfg.scale.name), cfg, run))


if __name__ == "__main__":
    main()
