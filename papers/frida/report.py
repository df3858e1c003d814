"""The FRIDA report: the claim checked setting by setting, from the saved results.

Every table is computed now from the result stores with the same code the figures command writes its
tables with (papers/frida/figures.py), so a rerun changes the report; nothing is read from the README.
The authors' claim is quoted as theirs; their numbers could not be consulted offline
(papers/frida/reference/README.md). The last section lists every result store.

    python -m papers.frida.report [scale=paper] [wandb=true]    (make report-frida)
"""

from __future__ import annotations

from pathlib import Path

from common.app import entrypoint
from common.report import Figure, LinePlot, Report, ReportConfig, Section, Table, run_report, store_tables

CLAIM = """The authors (arXiv 2410.05020, abstract): "Our evaluation shows that FRIDA outperforms
state-of-the-art methods, especially in non-IID settings." Their tables, client counts and hardware
could not be consulted offline, so none of their numbers appears here. Below, every FRIDA detector
(membership and property inference, their vote) and every baseline (L2, STD, cosine, FoolsGold-style
similarity, DAGMM, STD-DAGMM, Delta-DAGMM) scores every federation; baselines are scored in the
direction they were designed for, and their flipped AUC (the better direction chosen after the fact,
with the labels) is shown beside it. Held-out: MNIST, Fashion-MNIST and Shakespeare, on which nothing of
FRIDA was tuned; in-sample: digits, where its defaults were chosen. Hardware: the run table at the end
(a 2-core CPU unless a GPU row appears)."""


def build(results_dir: Path, scale: str) -> Report:
    from papers.frida import figures as fg

    results = results_dir / "frida"
    stores = {
        e: fg.load_store(results, e, scale) for e in ("grid", "research", "shakespeare", "canary", "bench")
    }
    detect = fg.latest_detect_rows(results, scale)

    def table(title: str, experiment: str, make, empty: str, note: str = "") -> Table:
        rows = stores.get(experiment)
        if rows is None:
            return Table(title, sources=[experiment], empty=empty)
        return Table(title, markdown=fg.markdown(make(rows)), sources=[experiment], note=note)

    research_keys = ["dataset", "free_rider", "partition", "num_free_riders"]
    grid_keys = ["free_rider", "partition", "num_free_riders"]

    def riding(rows):
        return rows[(~rows["mitigate"]) & (rows["free_rider"] != "none")]

    sections = [
        Section(
            "The claim, and the answer here",
            prose=CLAIM,
            tables=[
                table(
                    "Held-out, research scale: mean ROC-AUC / F1 per dataset and partition",
                    "research",
                    lambda r: fg.summary_records(
                        fg._order(r, ["dataset", "partition"]), ["dataset", "partition"]
                    ),
                    "run `python -m papers.frida.research`",
                ),
                table(
                    "Held-out, Shakespeare (one client per speaker)",
                    "shakespeare",
                    lambda r: fg.summary_records(r, ["dataset", "partition"]),
                    "run `python -m papers.frida.shakespeare`",
                ),
                table(
                    "In-sample, digits: per free-rider kind",
                    "grid",
                    lambda r: fg.summary_records(fg._order(riding(r), ["free_rider"]), ["free_rider"]),
                    "run `python -m papers.frida.grid`",
                ),
            ],
        ),
        Section(
            "Research scale: full MNIST and Fashion-MNIST, 100 clients with sampling",
            tables=[
                table(
                    "Best FRIDA detector against the best baseline, per setting",
                    "research",
                    lambda r: fg.wins_records(fg._order(r, research_keys), research_keys),
                    "run `python -m papers.frida.research`",
                ),
                table(
                    "Rounds from the first free-riding round to the first flag (share caught)",
                    "research",
                    lambda r: fg.detection_records(fg._order(r, research_keys), research_keys),
                    "run `python -m papers.frida.research`",
                ),
            ],
            figures=[Figure("research_auc")],
        ),
        Section(
            "Shakespeare",
            tables=[
                table(
                    "ROC-AUC per detector (baselines: designed / flipped)",
                    "shakespeare",
                    lambda r: fg.auc_records(r, research_keys),
                    "run `python -m papers.frida.shakespeare`",
                )
            ],
            figures=[Figure("shakespeare_auc")],
        ),
        Section(
            "Digits: every free-rider kind",
            tables=[
                table(
                    "Best FRIDA detector against the best baseline, per setting",
                    "grid",
                    lambda r: fg.wins_records(fg._order(riding(r), grid_keys), grid_keys),
                    "run `python -m papers.frida.grid`",
                )
            ],
            figures=[Figure("detector_auc"), Figure("f1_by_round"), Figure("accuracy_mitigation")],
        ),
        Section(
            "The canary protocol as a variable",
            tables=[
                table(
                    "ROC-AUC as one factor of the protocol changes (and the canary's extra sample-gradients)",
                    "canary",
                    fg.canary_records,
                    "run `python -m papers.frida.canary`",
                )
            ],
            figures=[Figure("canary_sweep")],
        ),
        Section(
            "What detection and the canary cost",
            tables=[
                table(
                    "Per round: each detector's server time against the clients' training",
                    "bench",
                    lambda r: fg.overhead_records(r)[0],
                    "run `python -m papers.frida.bench`",
                ),
                table(
                    "Per canary protocol: the clients' training time and extra sample-gradients",
                    "bench",
                    lambda r: fg.overhead_records(r)[1],
                    "run `python -m papers.frida.bench`",
                ),
            ],
            figures=[Figure("overhead")],
        ),
        Section(
            "The same federation on Flower's simulation runtime and in-process",
            tables=[
                Table(
                    "ROC-AUC and accuracy per runtime",
                    markdown=fg.markdown(fg.runtime_records(detect)) if detect is not None else "",
                    sources=["detect"],
                    empty="run `python -m papers.frida.detect runtime=simulation` and `runtime=inprocess`",
                )
            ],
        ),
        Section("Every result store", tables=store_tables(results_dir, "frida", scale)),
    ]
    plots = [
        LinePlot(
            "detect",
            "round",
            ["test_accuracy", "auc/vote", "auc/mia_loss", "auc/l2"],
            "Accuracy and per-round ROC-AUC by federated round",
        ),
        LinePlot(
            "research",
            "cell/num_free_riders",
            ["metrics/auc.vote", "metrics/auc.mia_loss", "metrics/auc.l2"],
            "ROC-AUC against the number of free-riders (100 clients)",
        ),
    ]
    return Report(
        "frida",
        f"FRIDA: Free-Rider Detection using Privacy Attacks, reproduction ({scale})",
        intro="",
        sections=sections,
        plots=plots,
    )


@entrypoint("frida/report", schema=ReportConfig)
def main(cfg, run):
    """`make report-frida`: the report from the saved results (figures from the figures command)."""
    return str(run_report(build(Path(cfg.paths.results_dir), cfg.scale.name), cfg, run))


if __name__ == "__main__":
    main()
