"""FRIDA figures and tables, rebuilt from saved results only (never recomputed).

    python -m papers.frida.figures [scale=paper] [paths.results_dir=...] [logger=wandb]

Reads <paths.results_dir>/frida/grid/<scale>/results.jsonl (and .../bench/<scale>/results.jsonl if
present) and writes under <paths.figures_dir>/frida/, each name ending in _<scale>:
  auc_vs_alpha              ROC-AUC of every detector against the partition, one panel per free-rider
  f1_by_round               per-round F1 of every detector's flags at Dirichlet alpha 0.1
  accuracy_mitigation       final test accuracy: no free-riders / free-riders / with mitigation
  overhead                  detector seconds per round against the round's client training time
  auc_table.md              the full AUC table (mean and std over seeds) the README shows
  acceptance.md             the issue's acceptance cell, pass/fail, from the same rows
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

import papers.frida.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.errors import BadInput
from common.plotting import FigureOut, new_figure, publish, save
from common.results import ResultStore
from papers.frida.config import BASELINE_DETECTORS, FRIDA_DETECTORS

PAPER = "frida"
log = logging.getLogger(__name__)
PARTITION_ORDER = ["iid", "1.0", "0.5", "0.1"]
DETECTORS = list(FRIDA_DETECTORS + BASELINE_DETECTORS)
ACCEPT = {"free_rider": "gradient_noiser", "partition": "0.1", "num_free_riders": 2}


def _source(rows: pd.DataFrame) -> str:
    return f"CPU in-process runtime | digits, {int(rows['num_clients'].iloc[0])} clients, " \
           f"{int(rows['rounds'].iloc[0])} rounds | {rows['seed'].nunique()} seeds"


def _partitions(rows: pd.DataFrame) -> list[str]:
    present = set(rows["partition"])
    return [p for p in PARTITION_ORDER if p in present] + sorted(present - set(PARTITION_ORDER))


def _detectors(rows: pd.DataFrame) -> list[str]:
    return [d for d in DETECTORS if f"auc.{d}" in rows]


def markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def auc_table(detect: pd.DataFrame) -> pd.DataFrame:
    dets = _detectors(detect)
    out = []
    for (fr, part, n), g in detect.groupby(["free_rider", "partition", "num_free_riders"]):
        row = {"free_rider": fr, "partition": part, "num_free_riders": n, "seeds": len(g)}
        for d in dets:
            row[d] = f"{g[f'auc.{d}'].mean():.3f} ± {g[f'auc.{d}'].std(ddof=0):.3f}"
        out.append(row)
    table = pd.DataFrame(out)
    table["partition"] = pd.Categorical(table["partition"], _partitions(detect), ordered=True)
    return table.sort_values(["free_rider", "num_free_riders", "partition"])


def acceptance(detect: pd.DataFrame) -> str:
    g = detect[(detect["free_rider"] == ACCEPT["free_rider"]) & (detect["partition"] == ACCEPT["partition"])
               & (detect["num_free_riders"] == ACCEPT["num_free_riders"])]
    if g.empty:
        return "acceptance cell (gradient_noiser, alpha 0.1, 2 free-riders) not in these results\n"
    means = {d: g[f"auc.{d}"].mean() for d in _detectors(g)}
    checks = [("mia_loss", ">=", 0.95), ("l2", "<=", 0.7), ("std", "<=", 0.7)]
    seeds = sorted(g["seed"].tolist())
    lines = [f"Acceptance cell: digits, {int(g['num_clients'].iloc[0])} clients, "
             f"2 gradient-noiser free-riders, Dirichlet alpha 0.1, mean ROC-AUC over {len(g)} seeds "
             f"{seeds}:", ""]
    lines += ["| detector | mean AUC | requirement | met |", "|---|---|---|---|"]
    for det, op, bound in checks:
        ok = means[det] >= bound if op == ">=" else means[det] <= bound
        lines.append(f"| {det} | {means[det]:.3f} | {op} {bound} | {'yes' if ok else 'NO'} |")
    lines += ["", "All detectors in that cell: " + ", ".join(f"{d} {v:.3f}" for d, v in means.items()), ""]
    flags = ["| detector | accuracy | precision | recall | F1 | FPR | FNR |", "|---|---|---|---|---|---|---|"]
    for d in _detectors(g):
        vals = [g[f"{m}.{d}"].mean() for m in ("accuracy", "precision", "recall", "f1", "fpr", "fnr")]
        flags.append(f"| {d} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines + ["Flags in that cell (all client-rounds, mean over seeds):", ""] + flags) + "\n"


def plot_auc_vs_alpha(detect: pd.DataFrame, out_dir: FigureOut) -> list[Path]:
    n = int(sorted(detect["num_free_riders"].unique())[0])
    rows = detect[detect["num_free_riders"] == n]
    kinds = sorted(rows["free_rider"].unique())
    parts = _partitions(rows)
    fig, axes = new_figure(1, len(kinds), figsize=(3.0 * len(kinds), 3.2), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        g = rows[rows["free_rider"] == kind]
        for d in _detectors(g):
            stats = g.groupby("partition")[f"auc.{d}"].agg(["mean", "std"]).reindex(parts)
            style = "-o" if d in FRIDA_DETECTORS else "--x"
            ax.errorbar(range(len(parts)), stats["mean"], yerr=stats["std"], fmt=style, label=d, capsize=2)
        ax.set_xticks(range(len(parts)), ["IID" if p == "iid" else f"α={p}" for p in parts])
        ax.set_title(kind)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel(f"ROC-AUC ({n} free-riders)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, "auc_vs_alpha", out_dir, source=_source(rows))


def plot_f1_by_round(detect: pd.DataFrame, out_dir: FigureOut) -> list[Path]:
    n = int(sorted(detect["num_free_riders"].unique())[0])
    part = "0.1" if "0.1" in set(detect["partition"]) else _partitions(detect)[-1]
    rows = detect[(detect["num_free_riders"] == n) & (detect["partition"] == part)]
    kinds = sorted(rows["free_rider"].unique())
    fig, axes = new_figure(1, len(kinds), figsize=(3.0 * len(kinds), 3.2), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        g = rows[rows["free_rider"] == kind]
        for d in _detectors(g):
            curves = np.array([np.asarray(c, dtype=float) for c in g[f"f1_by_round.{d}"]])
            ax.plot(np.arange(1, curves.shape[1] + 1), np.nanmean(curves, axis=0),
                    "-" if d in FRIDA_DETECTORS else "--", label=d)
        ax.set_title(f"{kind}, α={part}")
        ax.set_xlabel("round")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("F1 of flags")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, "f1_by_round", out_dir, source=_source(rows))


def plot_accuracy(rows: pd.DataFrame, out_dir: FigureOut) -> list[Path] | None:
    mitigated = rows[rows["mitigate"]]
    if mitigated.empty:
        return None
    n = int(mitigated["num_free_riders"].iloc[0])
    parts = _partitions(mitigated)
    kinds = sorted(mitigated["free_rider"].unique())
    fig, axes = new_figure(1, len(parts), figsize=(4.0 * len(parts), 3.2), sharey=True, squeeze=False)
    for ax, part in zip(axes[0], parts):
        clean = rows[(rows["free_rider"] == "none") & (rows["partition"] == part)]["final_accuracy"].mean()
        attacked = [rows[(rows["free_rider"] == k) & (rows["partition"] == part) & ~rows["mitigate"]
                         & (rows["num_free_riders"] == n)]["final_accuracy"].mean() for k in kinds]
        defended = [mitigated[(mitigated["free_rider"] == k) & (mitigated["partition"] == part)]
                    ["final_accuracy"].mean() for k in kinds]
        x = np.arange(len(kinds))
        ax.bar(x - 0.2, attacked, 0.4, label="free-riders, no mitigation")
        ax.bar(x + 0.2, defended, 0.4, label="mitigation (vote)")
        ax.axhline(clean, color="k", ls=":", label="no free-riders")
        ax.set_xticks(x, kinds, rotation=30, ha="right")
        ax.set_title("IID" if part == "iid" else f"α={part}")
        low = min([clean, *attacked, *defended])
        ax.set_ylim(max(0.0, low - 0.05), min(1.0, max([clean, *attacked, *defended]) + 0.03))
    axes[0][0].set_ylabel("final test accuracy")
    axes[0][-1].legend(loc="lower right")
    fig.subplots_adjust(bottom=0.3)
    return save(fig, "accuracy_mitigation", out_dir, source=_source(rows))


def plot_overhead(bench: pd.DataFrame, out_dir: FigureOut) -> list[Path] | None:
    if bench.empty:
        return None
    dets = [d for d in DETECTORS if f"detect_s.{d}" in bench]
    means = [bench[f"detect_s.{d}"].mean() * 1e3 for d in dets]
    fig, ax = new_figure(figsize=(6, 3.4))
    ax.barh(dets[::-1], means[::-1], label="detector, per round")
    ax.axvline(bench["client_train_s"].mean() * 1e3, color="k", ls="--",
               label="client training, per round (sum over clients)")
    ax.set_xlabel("milliseconds per round")
    ax.legend(loc="lower right")
    fig.subplots_adjust(bottom=0.2)
    return save(fig, "overhead", out_dir, source=f"{bench['device'].iloc[0]} | in-process runtime | "
                f"{int(bench['num_clients'].iloc[0])} clients, {int(bench['rounds'].iloc[0])} rounds")


@entrypoint("frida/figures")
def main(cfg, run):
    results = Path(cfg.results)
    grid_path = results / "grid" / cfg.scale.name / "results.jsonl"
    if not grid_path.exists():
        raise BadInput(f"no grid results at {grid_path}; run `python -m papers.frida.grid` first")
    store = ResultStore(grid_path)
    rows = store.load()
    # a store can hold cells of earlier configs (another digest of the fixed settings): figures show
    # the config of the most recently finished cell only
    latest = store.rows()[-1]["cell"]["base"]
    rows = rows[rows["base"] == latest]
    out = FigureOut(Path(cfg.out), cfg.scale.name)
    detect = rows[(~rows["mitigate"]) & (rows["free_rider"] != "none")]
    written = plot_auc_vs_alpha(detect, out) + plot_f1_by_round(detect, out)
    written += plot_accuracy(rows, out) or []
    bench_path = results / "bench" / cfg.scale.name / "results.jsonl"
    bench_store = ResultStore(bench_path)
    bench = bench_store.load()
    if len(bench):
        bench = bench[bench["base"] == bench_store.rows()[-1]["cell"]["base"]]
    written += plot_overhead(bench, out) or []
    written += [out.write_text("auc_table", "md", markdown(auc_table(detect))),
                out.write_text("acceptance", "md", acceptance(detect))]
    for path in written:
        log.info("figures: %s", path)
    publish(run, written, cfg.scale.name)
    return [str(p) for p in written]


if __name__ == "__main__":
    main()
