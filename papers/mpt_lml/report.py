"""The mpt_lml report: the paper's claim checked experiment by experiment, from the saved results.

Each section's tables are computed now from the experiments' summary.json files (the same table code
the figures command writes results_<scale>.md with), beside the authors' published curves where the
paper gives them; nothing is read from the README. The last section lists every result store.

    python -m papers.mpt_lml.report [scale=paper] [wandb=true]    (make report-mpt_lml)
"""

from __future__ import annotations

import json
from pathlib import Path

import papers.mpt_lml.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.report import Figure, LinePlot, Report, Section, Table, run_report, store_tables

CLAIM = """The paper (arXiv 2306.00520) shows that the cumulative masked pre-training score, the sum of
the mean masked-token log-likelihoods over all mask sizes, equals the log marginal likelihood (LML) of a
model with one joint distribution. Where the LML is known exactly (PPCA, an HMM language, a Bernoulli
latent model by quadrature) the tables set the two side by side; for masked LMs without an exact LML
they compare the cumulative score with pseudo-log-likelihood (PLL) and fixed-rate scores. Standard
errors are over Monte Carlo orderings or training seeds, as each table says. Hardware: the run table at
the end (this project runs on CPUs unless a GPU row appears)."""


def _markdown_table(title: str, summaries: dict, name: str, make, sources: list[str], **extra) -> Table:
    s = summaries.get(name)
    if s is None:
        return Table(title, sources=sources, empty=f"run `python -m papers.mpt_lml.{name}`", **extra)
    return Table(
        title,
        markdown=make(s),
        sources=sources,
        note=f"{s['device']}, torch threads {s['torch_threads']}, wall time {s['wall_s']:.0f} s.",
        **extra,
    )


def build(results_dir: Path, scale: str) -> Report:
    """The report's sections from whatever results exist at `scale`."""
    from papers.mpt_lml import figures as fg
    from papers.mpt_lml.summary import load_summary, ok_rows

    summaries = {}
    for name in fg.FIGURES:
        s = load_summary(results_dir, name, scale)
        if s is not None and ok_rows(s):
            summaries[name] = s
    bench_path = results_dir / "mpt_lml" / "benchmark" / scale / "batched_vs_loop.json"
    bench = json.loads(bench_path.read_text()) if bench_path.is_file() else None
    sections = [
        Section(
            "The claim and what is checked",
            prose=CLAIM,
            tables=[
                Table(
                    "Every experiment at a glance",
                    markdown=fg.results_table(summaries),
                    sources=sorted(summaries),
                    empty="no mpt_lml results at this scale yet",
                )
                if summaries
                else Table("Every experiment at a glance", empty="run `make reproduce-mpt_lml`")
            ],
        ),
        Section(
            "Gaussian models: the cumulative score is the LML",
            prose="PPCA with a closed-form LML: the Monte Carlo cumulative score converges to it as "
            "masks per size grow; the area under the MPT curve is the LML; training by the "
            "cumulative score reaches the LML optimum; the curve rises towards the LML while "
            "a model trains.",
            figures=[Figure("convergence"), Figure("curve"), Figure("ppca_training"), Figure("noise_to_lml")],
        ),
        Section(
            "An HMM language with an exact LML",
            tables=[
                _markdown_table(
                    "Exact LML, cumulative MPT, PLL and the areas",
                    summaries,
                    "mlm_hmm",
                    fg.hmm_table,
                    ["mlm_hmm"],
                )
            ],
            figures=[Figure("mlm_hmm")],
        ),
        Section(
            "A real pretrained masked LM: AntiBERTy",
            tables=[
                _markdown_table(
                    "Cumulative score, PLL and the spread over orderings",
                    summaries,
                    "mlm_pretrained",
                    fg.pretrained_table,
                    ["mlm_pretrained"],
                )
            ],
            figures=[Figure("mlm_pretrained")],
        ),
        Section(
            "Bernoulli latent model on binarised MNIST (the authors' exp_5)",
            tables=[
                _markdown_table(
                    "Quadrature LML against cumulative MPT",
                    summaries,
                    "bernoulli_digits",
                    fg.bernoulli_table,
                    ["bernoulli_digits"],
                )
            ],
            figures=[Figure("bernoulli_digits")],
        ),
        Section(
            "Tiny BERTs on text, beside the authors' BERT curves",
            tables=[
                _markdown_table(
                    "Areas in bits per character",
                    summaries,
                    "mlm_text",
                    fg.text_table,
                    ["mlm_text"],
                    reference="the authors' BERT MPT curves "
                    "(papers/mpt_lml/reference/bert_mpt_curves.csv, their A100 runs)",
                )
            ],
            figures=[Figure("mlm_text")],
        ),
        Section(
            "Benchmark: batched estimators against per-mask loops",
            tables=[
                Table(
                    "CPU time, best of the same repeats on both sides",
                    markdown=fg.benchmark_table(bench) if bench else "",
                    sources=["benchmark"],
                    empty="run `python -m papers.mpt_lml.benchmark`",
                )
            ],
            figures=[Figure("benchmark")],
        ),
        Section("Every result store", tables=store_tables(results_dir, "mpt_lml", scale)),
    ]
    plots = [
        LinePlot(
            "convergence",
            "cell/masks_per_size",
            ["metrics/mean", "metrics/std"],
            "Monte Carlo cumulative MPT against masks per size",
        ),
        LinePlot(
            "ppca_training",
            "train/cumulative/seed4/step",
            ["train/cumulative/seed4/lml"],
            "PPCA trained by the cumulative score: the exact LML per step (seed 4)",
        ),
    ]
    return Report(
        "mpt_lml",
        f"On Masked Pre-training and the Marginal Likelihood: reproduction ({scale})",
        intro="",
        sections=sections,
        plots=plots,
    )


@entrypoint("mpt_lml/report")
def main(cfg, run):
    """`make report-mpt_lml`: the report from the saved results (figures from the figures command)."""
    return str(run_report(build(Path(cfg.paths.results_dir), cfg.scale.name), cfg, run))


if __name__ == "__main__":
    main()
