"""FRIDA figures and tables, rebuilt from saved results only (never recomputed).

    python -m papers.frida.figures [scale=paper] [paths.results_dir=...] [logger=wandb]

Reads the result stores under <paths.results_dir>/frida/<experiment>/<scale>/ that exist (grid,
research, shakespeare, canary, bench, detect; at least one is needed) and writes under
<paths.figures_dir>/frida/, each name ending in _<scale>:
  detector_auc          ROC-AUC per detector (one panel each; FRIDA's and the baselines' apart) against
                        the partition, one line per free-rider kind (grid)
  f1_by_round           per-round F1 of every detector's flags at the most skewed partition (grid)
  accuracy_mitigation   final test accuracy: no free-riders / free-riders / with mitigation (grid)
  research_auc          ROC-AUC per detector at research scale (full MNIST, Fashion-MNIST; baselines
                        in their designed direction and, hollow, flipped after the fact)
  shakespeare_auc       the same for Shakespeare
  canary_sweep          ROC-AUC against each factor of the canary protocol (canary)
  overhead              detector seconds per round and the canary protocols' client compute (bench)
  *.md                  the tables the README shows (AUC, F1, rounds to detect, where FRIDA wins and
                        loses, the canary sweep, the overhead, the runtimes' cross-check)
The authors' published claim is drawn beside ours, labelled as theirs (reference/README.md).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from common.app import entrypoint
from common.errors import BadInput
from common.results import ResultStore, flat_table
from common.schema import FiguresConfig
from papers.frida.config import BASELINE_DETECTORS, FRIDA_DETECTORS

if TYPE_CHECKING:
    from common.plotting import FigureOut

PAPER = "frida"
log = logging.getLogger(__name__)
PARTITION_ORDER = ["iid", "1.0", "0.5", "0.1", "natural"]
DETECTORS = list(FRIDA_DETECTORS + BASELINE_DETECTORS)
ACCEPT = {"free_rider": "gradient_noiser", "partition": "0.1", "num_free_riders": 2}
DESIGNED = {
    "l2": "low",
    "std": "low",
    "cosine": "high",
    "foolsgold": "high",
    "dagmm": "high",
    "std_dagmm": "high",
    "delta_dagmm": "high",
}
KIND_STYLE = {
    "plain": ("C0", "o"),
    "disguised": ("C1", "s"),
    "delta_weights": ("C2", "^"),
    "gradient_noiser": ("C3", "D"),
    "adaptive": ("C4", "v"),
    "canary_aware": ("C5", "P"),
    "switching": ("C6", "X"),
}
AUTHORS_CLAIM = (
    "The authors' claim (Recasens et al., arXiv 2410.05020, abstract): FRIDA outperforms "
    "state-of-the-art methods, especially in non-IID settings.\nTheir per-setting numbers and "
    "hardware could not be consulted offline, so no published value is drawn (reference/README.md)."
)


# ---- reading ------------------------------------------------------------------------------------
def load_store(results: Path, experiment: str, scale: str):
    """The finished cells of one store, limited to its most recent configuration (a store can hold
    cells of earlier configs: another digest of the fixed settings); None when there is none."""
    path = results / experiment / scale / "results.jsonl"
    if not path.exists():
        return None
    every = ResultStore(path).rows()  # read once: a run appending meanwhile cannot skew what follows
    latest = {r["key"]: r for r in every}
    # in cell-key order, not the order cells finished (a parallel grid's differs from run to run), so
    # a mean over the same cells is the same float and a table rounding on a tie does not flip
    rows = flat_table(latest[k] for k in sorted(latest) if latest[k]["status"] == "ok")
    if rows.empty:
        return None
    if "base" in rows:
        newest = [r for r in every if r["status"] == "ok"][-1]
        rows = rows[rows["base"] == newest["cell"]["base"]]
    return rows


def _partitions(rows) -> list[str]:
    present = set(rows["partition"])
    return [p for p in PARTITION_ORDER if p in present] + sorted(present - set(PARTITION_ORDER))


def _label(part: str) -> str:
    return {"iid": "IID", "natural": "natural (speaker)"}.get(part, f"Dir. α={part}")


def _detectors(rows) -> list[str]:
    return [d for d in DETECTORS if f"auc.{d}" in rows and rows[f"auc.{d}"].notna().any()]


def _sampled(fraction: float) -> str:
    return "all sampled every round" if fraction >= 1 else f"{fraction:.0%} sampled per round"


def _source(rows, what: str) -> str:
    seeds = rows["seed"].nunique() if "seed" in rows else 0
    sampled = _sampled(rows["fraction_train"].iloc[0] if "fraction_train" in rows else 1.0)
    return (
        f"ours: CPU (2 shared cores), in-process Flower runtime | {what}, {int(rows['num_clients'].iloc[0])} "
        f"clients ({sampled}), {int(rows['rounds'].iloc[0])} rounds | {seeds} seeds"
    )


def markdown(records: list[dict], columns: list[str] | None = None) -> str:
    if not records:
        return "(no finished cells)\n"
    cols = columns or list(records[0])
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in records]
    return "\n".join(lines) + "\n"


def _ms(values) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return f"{mean:.3f} ± {std:.3f}" if len(values) > 1 else f"{mean:.3f}"


# ---- tables -------------------------------------------------------------------------------------
def auc_records(rows, keys: list[str], metric: str = "auc") -> list[dict]:
    """Mean ± std over seeds of a metric per detector, one record per setting; baselines get
    'designed / flipped' when the metric is the AUC."""
    out = []
    for key, g in rows.groupby(keys, sort=False):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rec["seeds"] = len(g)
        for d in _detectors(rows):
            col = f"{metric}.{d}"
            if col not in g:
                continue
            text = _ms(g[col].tolist())
            if metric == "auc" and f"auc_flipped.{d}" in g:
                text += f" / {_ms(g[f'auc_flipped.{d}'].tolist())}"
            rec[d] = text
        out.append(rec)
    return out


def detection_records(rows, keys: list[str]) -> list[dict]:
    """Per setting and detector: the mean rounds from a free-rider's first free-riding round to its
    first flag (1: at once), over the free-riders caught, with the share caught at all in brackets."""
    import numpy as np

    out = []
    for key, g in rows.groupby(keys, sort=False, observed=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rec["seeds"] = len(g)
        for d in _detectors(rows):
            if f"rounds_to_detect.{d}" not in g:
                continue
            rounds = g[f"rounds_to_detect.{d}"].astype(float)
            caught = g[f"detected.{d}"].astype(float).mean()
            mean = f"{np.nanmean(rounds):.1f}" if rounds.notna().any() else "–"
            rec[d] = f"{mean} ({caught:.0%})"
        out.append(rec)
    return out


def _order(rows, keys: list[str]):
    import pandas as pd

    rows = rows.copy()
    if "partition" in keys:
        rows["partition"] = pd.Categorical(rows["partition"], _partitions(rows), ordered=True)
    return rows.sort_values(keys)


def _verdict(frida: float, designed: float, after: float, tie: float = 0.005) -> str:
    """yes: above both baselines; tie: within 0.005 of the better one; otherwise which it beats."""
    if abs(frida - after) < tie:
        return "tie"
    if frida > after:
        return "yes"
    return "vs designed only" if frida > designed + tie else "no"


def wins_records(rows, keys: list[str]) -> list[dict]:
    """Per setting: the best FRIDA detector against the best baseline in its designed direction and
    the best baseline at its better direction chosen after the fact (in-sample, with labels)."""
    out = []
    for key, g in rows.groupby(keys, sort=False, observed=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        frida = {d: g[f"auc.{d}"].mean() for d in FRIDA_DETECTORS if f"auc.{d}" in g}
        designed = {d: g[f"auc.{d}"].mean() for d in BASELINE_DETECTORS if f"auc.{d}" in g}
        after = {
            d: max(g[f"auc.{d}"].mean(), g[f"auc_flipped.{d}"].mean())
            for d in designed
            if f"auc_flipped.{d}" in g
        }
        if not frida or not designed:
            continue
        bf, bd = max(frida, key=frida.get), max(designed, key=designed.get)
        ba = max(after, key=after.get) if after else bd
        flipped = after and g[f"auc_flipped.{ba}"].mean() > g[f"auc.{ba}"].mean()
        rec.update(
            {
                "best FRIDA": f"{bf} {frida[bf]:.3f}",
                "best baseline (designed)": f"{bd} {designed[bd]:.3f}",
                "best baseline (after the fact)": f"{ba}{' flipped' if flipped else ''} "
                f"{after.get(ba, designed[bd]):.3f}",
                "FRIDA wins": _verdict(frida[bf], designed[bd], after.get(ba, designed[bd])),
            }
        )
        out.append(rec)
    return out


def summary_records(rows, keys: list[str]) -> list[dict]:
    """Per setting, averaged over the free-rider kinds, counts and seeds it holds: the vote and the
    canary loss attack (ROC-AUC / F1 of their flags) against the baseline with the best mean AUC in its
    designed direction, and the best at either direction chosen after the fact."""
    out = []
    for key, g in rows.groupby(keys, sort=False, observed=True):
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rec["cells"] = len(g)
        for d in ("vote", "mia_loss"):
            if f"auc.{d}" in g:
                rec[d] = f"{g[f'auc.{d}'].mean():.3f} / {g[f'f1.{d}'].mean():.3f}"
        base = [d for d in BASELINE_DETECTORS if f"auc.{d}" in g]
        if base:
            bd = max(base, key=lambda d: g[f"auc.{d}"].mean())
            rec["best baseline, designed"] = f"{bd} {g[f'auc.{bd}'].mean():.3f} / {g[f'f1.{bd}'].mean():.3f}"
            after = {d: max(g[f"auc.{d}"].mean(), g[f"auc_flipped.{d}"].mean()) for d in base}
            ba = max(after, key=after.get)
            flipped = g[f"auc_flipped.{ba}"].mean() > g[f"auc.{ba}"].mean()
            rec["best baseline, after the fact"] = f"{ba}{' flipped' if flipped else ''} {after[ba]:.3f}"
        out.append(rec)
    return out


def acceptance(detect) -> str:
    g = detect[
        (detect["free_rider"] == ACCEPT["free_rider"])
        & (detect["partition"] == ACCEPT["partition"])
        & (detect["num_free_riders"] == ACCEPT["num_free_riders"])
    ]
    if g.empty:
        return "acceptance cell (gradient_noiser, alpha 0.1, 2 free-riders) not in these results\n"
    means = {d: g[f"auc.{d}"].mean() for d in _detectors(g)}
    checks = [("mia_loss", ">=", 0.95), ("l2", "<=", 0.7), ("std", "<=", 0.7)]
    seeds = sorted(g["seed"].tolist())
    lines = [
        f"Acceptance cell of the earlier issue (the in-sample setting): digits, "
        f"{int(g['num_clients'].iloc[0])} clients, 2 gradient-noiser free-riders, Dirichlet alpha 0.1, mean "
        f"ROC-AUC over {len(g)} seeds {seeds}; baselines in their designed direction:",
        "",
    ]
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


# ---- figures ------------------------------------------------------------------------------------
def _claim(fig) -> None:
    """The authors' claim, 14 points below the figure's bottom edge (whatever its height)."""
    from matplotlib.transforms import offset_copy

    below = offset_copy(fig.transFigure, fig=fig, y=-16, units="points")
    fig.text(
        0.01,
        0.0,
        AUTHORS_CLAIM,
        ha="left",
        va="top",
        fontsize=6.5,
        color="0.25",
        style="italic",
        transform=below,
    )


def _panel_grid(fig, names: list[str], ncols: int, title: str):
    """One subfigure holding a panel per name (no empty panels: the grid's spare cells are removed)."""
    nrows = math.ceil(len(names) / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    fig.suptitle(title, fontsize=9, fontweight="bold")
    flat = list(axes.ravel())
    for ax in flat[len(names) :]:
        ax.remove()
    return dict(zip(names, flat))


def _direction(d: str) -> str:
    return f"{d} (designed: {DESIGNED[d]} = suspicious)" if d in DESIGNED else d


def plot_detector_auc(detect, out: FigureOut, what: str) -> list[Path]:
    from common.plotting import new_figure, save

    n = int(sorted(detect["num_free_riders"].unique())[0])
    rows = detect[detect["num_free_riders"] == n]
    kinds = [k for k in KIND_STYLE if k in set(rows["free_rider"])]
    parts = _partitions(rows)
    frida = [d for d in FRIDA_DETECTORS if d in _detectors(rows)]
    base = [d for d in BASELINE_DETECTORS if d in _detectors(rows)]
    ncols = 4
    height = 2.3 * (math.ceil(len(frida) / ncols) + math.ceil(len(base) / ncols))
    fig, _ = new_figure(figsize=(13, height + 1.0), layout="constrained")
    fig.clf()
    top, bottom = fig.subfigures(
        2, 1, height_ratios=[math.ceil(len(frida) / ncols), math.ceil(len(base) / ncols)]
    )
    panels = {
        **_panel_grid(top, frida, ncols, "FRIDA (privacy attacks on each client's model)"),
        **_panel_grid(
            bottom,
            base,
            ncols,
            "Baselines (update statistics), scored in their designed "
            "direction (flipped AUC = 1 - AUC; tables)",
        ),
    }
    for d, ax in panels.items():
        for kind in kinds:
            g = rows[rows["free_rider"] == kind]
            stats = g.groupby("partition")[f"auc.{d}"].agg(["mean", "std"]).reindex(parts)
            color, marker = KIND_STYLE[kind]
            ax.errorbar(
                range(len(parts)),
                stats["mean"],
                yerr=stats["std"].fillna(0),
                color=color,
                marker=marker,
                label=kind.replace("_", " "),
                capsize=2,
                lw=1.2,
            )
        ax.axhline(0.5, color="0.5", ls=":", lw=0.8)
        ax.set_xticks(range(len(parts)), [_label(p) for p in parts], fontsize=7)
        ax.set_title(_direction(d), fontsize=8)
        ax.set_ylim(-0.02, 1.04)
    for sub in (top, bottom):
        sub.supylabel("ROC-AUC (per round, mean over rounds)", fontsize=8)
        sub.supxlabel("client data partition", fontsize=8)
    handles, labels = next(iter(panels.values())).get_legend_handles_labels()
    top.legend(
        handles,
        labels,
        loc="lower right",
        title=f"free-rider kind ({n} of {int(rows['num_clients'].iloc[0])})",
        fontsize=7,
        ncols=2,
    )
    _claim(fig)
    return save(
        fig, "detector_auc", out, source=_source(rows, what) + " | mean ± std over seeds; 0.5 = chance"
    )


def plot_f1_by_round(detect, out: FigureOut, what: str) -> list[Path]:
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from common.plotting import new_figure, save

    n = int(sorted(detect["num_free_riders"].unique())[0])
    part = _partitions(detect)[-1]
    rows = detect[(detect["num_free_riders"] == n) & (detect["partition"] == part)]
    kinds = [k for k in KIND_STYLE if k in set(rows["free_rider"])]
    groups = [
        ("FRIDA", [d for d in FRIDA_DETECTORS if d in _detectors(rows)]),
        ("baselines", [d for d in BASELINE_DETECTORS if d in _detectors(rows)]),
    ]
    fig, axes = new_figure(
        2, len(kinds), figsize=(2.3 * len(kinds) + 1.5, 5.2), sharey=True, sharex=True, squeeze=False
    )
    for r, (name, dets) in enumerate(groups):
        for c, kind in enumerate(kinds):
            ax = axes[r][c]
            g = rows[rows["free_rider"] == kind]
            for i, d in enumerate(dets):
                curves = [np.asarray(v, dtype=float) for v in g[f"f1_by_round.{d}"]]
                length = max(len(v) for v in curves)
                padded = np.array([np.pad(v, (0, length - len(v)), constant_values=np.nan) for v in curves])
                with warnings.catch_warnings():  # a round no cell reached: a gap in the line
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nanmean(np.where(np.isfinite(padded), padded, np.nan), axis=0)
                ax.plot(np.arange(1, length + 1), mean, color=f"C{i}", lw=1.2, label=d)
            ax.set_ylim(-0.02, 1.04)
            if r == 0:
                ax.set_title(f"{kind.replace('_', ' ')}, {_label(part)}", fontsize=8)
            if r == 1:
                ax.set_xlabel("federated round")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if c == 0:
                ax.set_ylabel(f"{name}: F1 of the flags")
        axes[r][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    return save(fig, "f1_by_round", out, source=_source(rows, what) + " | mean over seeds")


def plot_accuracy(rows, out: FigureOut, what: str) -> list[Path] | None:
    import numpy as np

    from common.plotting import new_figure, save

    mitigated = rows[rows["mitigate"]]
    if mitigated.empty:
        return None
    n = int(mitigated["num_free_riders"].iloc[0])
    parts = _partitions(mitigated)
    kinds = [k for k in KIND_STYLE if k in set(mitigated["free_rider"])]
    fig, axes = new_figure(1, len(parts), figsize=(4.5 * len(parts), 3.4), sharey=True, squeeze=False)
    for ax, part in zip(axes[0], parts):
        clean = rows[(rows["free_rider"] == "none") & (rows["partition"] == part)]["final_accuracy"].mean()
        attacked = [
            rows[
                (rows["free_rider"] == k)
                & (rows["partition"] == part)
                & ~rows["mitigate"]
                & (rows["num_free_riders"] == n)
            ]["final_accuracy"].mean()
            for k in kinds
        ]
        defended = [
            mitigated[(mitigated["free_rider"] == k) & (mitigated["partition"] == part)][
                "final_accuracy"
            ].mean()
            for k in kinds
        ]
        x = np.arange(len(kinds))
        ax.bar(x - 0.2, attacked, 0.4, label="free-riders, no mitigation")
        ax.bar(x + 0.2, defended, 0.4, label="free-riders, flagged ones left out (vote)")
        ax.axhline(clean, color="k", ls=":", label="no free-riders")
        ax.set_xticks(x, [k.replace("_", " ") for k in kinds], rotation=30, ha="right")
        ax.set_title(_label(part))
        low = min([clean, *attacked, *defended])
        ax.set_ylim(max(0.0, low - 0.05), min(1.0, max([clean, *attacked, *defended]) + 0.03))
    axes[0][0].set_ylabel("final test accuracy (fraction correct)")
    axes[0][-1].legend(loc="lower right", fontsize=7)
    return save(fig, "accuracy_mitigation", out, source=_source(rows, what) + f" | {n} free-riders")


def plot_dotplot(
    rows, out: FigureOut, name: str, panels: list[str], rows_keys: list[tuple], what: str, row_label
) -> list[Path]:
    """Small multiples of AUC per detector: a row per `rows_keys` value, a column per partition; FRIDA
    above the line, baselines below; filled: designed direction, hollow: flipped after the fact; one
    marker per number of free-riders; bars: std over seeds."""
    from common.plotting import new_figure, save

    counts = sorted(rows["num_free_riders"].unique())
    markers = ["o", "s", "^", "D"]
    dets = _detectors(rows)
    y = {d: i for i, d in enumerate(reversed(dets))}
    fig, axes = new_figure(
        len(rows_keys),
        len(panels),
        figsize=(3.3 * len(panels) + 1.2, 3.0 * len(rows_keys)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for r, key in enumerate(rows_keys):
        for c, part in enumerate(panels):
            ax = axes[r][c]
            sel = rows[(rows["partition"] == part)]
            for k, v in zip(("dataset", "free_rider"), key):
                sel = sel[sel[k] == v]
            for j, n in enumerate(counts):
                g = sel[sel["num_free_riders"] == n]
                if g.empty:
                    continue
                off = (j - (len(counts) - 1) / 2) * 0.25
                for d in dets:
                    color = "C3" if d in FRIDA_DETECTORS else "C0"
                    ax.errorbar(
                        g[f"auc.{d}"].mean(),
                        y[d] + off,
                        xerr=g[f"auc.{d}"].std(ddof=0),
                        fmt=markers[j],
                        color=color,
                        ms=4,
                        capsize=1.5,
                        lw=0.8,
                        label=f"{n} free-riders" if d == dets[0] else None,
                    )
                    if f"auc_flipped.{d}" in g:
                        ax.plot(
                            g[f"auc_flipped.{d}"].mean(),
                            y[d] + off,
                            markers[j],
                            mfc="none",
                            color=color,
                            ms=4,
                            alpha=0.7,
                            label="baseline flipped (after the fact)"
                            if (d == next(b for b in dets if b in BASELINE_DETECTORS) and j == 0)
                            else None,
                        )
            ax.axhline(len(dets) - len([d for d in dets if d in FRIDA_DETECTORS]) - 0.5, color="0.3", lw=0.8)
            ax.axvline(0.5, color="0.5", ls=":", lw=0.8)
            ax.set_xlim(-0.02, 1.02)
            ax.set_yticks(range(len(dets)), list(reversed(dets)), fontsize=7)
            ax.set_title(f"{row_label(key)}, {_label(part)}", fontsize=8)
            if r == len(rows_keys) - 1:
                ax.set_xlabel("ROC-AUC (mean over rounds, then seeds)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    _claim(fig)
    return save(fig, name, out, source=_source(rows, what) + " | red: FRIDA, blue: baselines; 0.5 = chance")


FACTOR_LABEL = {
    "canary_modes": "canary protocol",
    "canary_sizes": "canary samples per round",
    "canary_per_batch": "canary samples per batch (0: all)",
    "local_epochs": "local epochs",
    "lrs": "local learning rate",
}
FACTOR_FIELD = {
    "canary_modes": "canary_mode",
    "canary_sizes": "canary_size",
    "canary_per_batch": "canary_per_batch",
    "local_epochs": "local_epochs",
    "lrs": "lr",
}
BASE_VALUE = {
    "canary_mode": "every_batch",
    "canary_size": 20,
    "canary_per_batch": 0,
    "local_epochs": 5,
    "lr": 0.3,
}


def canary_frame(rows):
    """Each factor's cells with the base cells as that factor's base value."""
    import pandas as pd

    frames = []
    base = rows[rows["factor"] == "base"]
    for factor in FACTOR_LABEL:
        g = rows[rows["factor"] == factor]
        if g.empty:
            continue
        b = base.copy()
        b["value"] = BASE_VALUE[FACTOR_FIELD[factor]]
        b["factor"] = factor
        frames.append(pd.concat([b, g]))
    return pd.concat(frames) if frames else rows.iloc[0:0]


def plot_canary(rows, out: FigureOut, what: str) -> list[Path] | None:
    from common.plotting import new_figure, save

    data = canary_frame(rows)
    if data.empty:
        return None
    factors = [f for f in FACTOR_LABEL if f in set(data["factor"])]
    keys = [(k, p) for k in sorted(set(data["free_rider"])) for p in _partitions(data)]
    dets = [
        d
        for d in ("mia_loss", "mia_grad", "pia_incons", "vote", "l2", "foolsgold", "std_dagmm")
        if f"auc.{d}" in data
    ]
    fig, axes = new_figure(
        len(keys),
        len(factors),
        figsize=(2.7 * len(factors) + 1.5, 2.4 * len(keys)),
        sharey=True,
        squeeze=False,
    )
    for r, (kind, part) in enumerate(keys):
        for c, factor in enumerate(factors):
            ax = axes[r][c]
            g = data[(data["factor"] == factor) & (data["free_rider"] == kind) & (data["partition"] == part)]
            values = _sweep_values(g)
            for i, d in enumerate(dets):
                means = [g[g["value"] == v][f"auc.{d}"].mean() for v in values]
                ax.plot(
                    range(len(values)),
                    means,
                    marker="o",
                    ms=3,
                    lw=1.2,
                    color=f"C{i}" if d in FRIDA_DETECTORS else "0.5",
                    ls="-" if d in FRIDA_DETECTORS else ["--", ":", "-."][i % 3],
                    label=d,
                )
            ax.set_xticks(range(len(values)), [str(v).replace("every_", "per ") for v in values], fontsize=7)
            ax.set_ylim(-0.02, 1.04)
            ax.axhline(0.5, color="0.7", ls=":", lw=0.8)
            if r == 0:
                ax.set_title(FACTOR_LABEL[factor], fontsize=8)
            if r == len(keys) - 1:
                ax.set_xlabel(FACTOR_LABEL[factor], fontsize=7)
            if c == 0:
                ax.set_ylabel(f"ROC-AUC\n{kind.replace('_', ' ')}, {_label(part)}", fontsize=7)
    axes[0][-1].legend(
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
        fontsize=7,
        title="solid: FRIDA, grey: baselines",
        title_fontsize=7,
    )
    return save(
        fig,
        "canary_sweep",
        out,
        source=_source(rows, what) + " | one factor changed at a time; mean over seeds",
    )


def _sweep_values(g) -> list:
    return sorted(set(g["value"]), key=lambda v: (str(type(v)), v))


def canary_records(rows) -> list[dict]:
    """One row per (factor, value), in the figure's order: factors as FACTOR_LABEL, values sorted."""
    data = canary_frame(rows)
    out = []
    for factor in [f for f in FACTOR_LABEL if f in set(data["factor"])]:
        for value in _sweep_values(data[data["factor"] == factor]):
            g = data[(data["factor"] == factor) & (data["value"] == value)]
            rec = {
                "factor": FACTOR_LABEL[factor],
                "value": value,
                "cells": len(g),
                "canary sample-gradients / own": f"{(g['canary_grads'] / g['own_grads']).mean():.2f}",
            }
            for d in ("mia_loss", "mia_grad", "pia_incons", "vote", "l2", "foolsgold"):
                if f"auc.{d}" in g:
                    rec[d] = f"{g[f'auc.{d}'].mean():.3f}"
            out.append(rec)
    return out


def plot_overhead(bench, out: FigureOut) -> list[Path] | None:
    from common.plotting import new_figure, save

    if bench is None or bench.empty:
        return None
    mode = "every_batch" if "every_batch" in set(bench["canary_mode"]) else bench["canary_mode"].iloc[0]
    own = bench[bench["canary_mode"] == mode]
    dets = [d for d in DETECTORS if f"detect_s.{d}" in own and own[f"detect_s.{d}"].notna().any()]
    means = [own[f"detect_s.{d}"].mean() * 1e3 for d in dets]
    modes = [
        m for m in ("none", "every_batch", "every_epoch", "every_round") if m in set(bench["canary_mode"])
    ]
    fig, (left, right) = new_figure(1, 2, figsize=(10, 3.6))
    left.barh(dets[::-1], means[::-1], color=["C3" if d in FRIDA_DETECTORS else "C0" for d in dets[::-1]])
    left.axvline(
        own["client_train_s"].mean() * 1e3,
        color="k",
        ls="--",
        label="clients' training per round (sum over sampled clients)",
    )
    left.set_xlabel("server time per round (milliseconds)")
    left.set_title(f"detectors (red: FRIDA, blue: baselines), canary {mode}", fontsize=8)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=7)
    train = [bench[bench["canary_mode"] == m]["client_train_s"].mean() for m in modes]
    extra = [
        (
            bench[bench["canary_mode"] == m]["canary_grads"] / bench[bench["canary_mode"] == m]["own_grads"]
        ).mean()
        for m in modes
    ]
    right.bar(range(len(modes)), train, color="C2")
    for i, e in enumerate(extra):
        right.text(i, train[i], f"+{100 * e:.0f}% sample-\ngradients", ha="center", va="bottom", fontsize=7)
    right.set_xticks(
        range(len(modes)),
        [m.replace("every_", "canary per\n") if m != "none" else "no\ncanary" for m in modes],
        fontsize=7,
    )
    right.set_ylabel("clients' training per round (seconds)")
    right.set_title("what the canary protocol costs the clients", fontsize=8)
    right.set_ylim(0, max(train) * 1.3)
    return save(
        fig,
        "overhead",
        out,
        source=f"ours: {bench['device'].iloc[0]} | in-process runtime | "
        f"{bench['dataset'].iloc[0]}, {int(bench['num_clients'].iloc[0])} clients, "
        f"{int(bench['rounds'].iloc[0])} rounds | mean over repeats",
    )


def overhead_records(bench) -> list[dict]:
    from papers.frida.bench import canary_cost_table, overhead_table

    modes = [
        m for m in ("none", "every_batch", "every_epoch", "every_round") if m in set(bench["canary_mode"])
    ]
    mode = "every_batch" if "every_batch" in modes else modes[0]
    own = bench[bench["canary_mode"] == mode]
    table = overhead_table(
        own, [d for d in DETECTORS if f"detect_s.{d}" in own and own[f"detect_s.{d}"].notna().any()]
    )
    cost = canary_cost_table(bench, modes)
    return (
        [
            {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in table.to_dict("records")
        ],
        [
            {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()}
            for r in cost.to_dict("records")
        ],
    )


def latest_detect_rows(results: Path, scale: str):
    """The detect store's newest run per (federation config, runtime): each config a runtime ran
    in, so the runtimes' cross-checks sit side by side."""
    import pandas as pd

    path = results / "detect" / scale / "results.jsonl"
    rows = [r for r in ResultStore(path).rows() if r["status"] == "ok"] if path.exists() else []
    if not rows:
        return None
    latest = {}
    for r in rows:
        config = json.dumps({k: v for k, v in r["cell"].items() if k != "runtime"}, sort_keys=True)
        latest[(config, r["cell"]["runtime"])] = {**r["cell"], **r["metrics"], "duration_s": r["duration_s"]}
    return pd.DataFrame(list(latest.values()))


def runtime_records(detect) -> list[dict]:
    out = []
    detect = detect.copy()
    detect["setting"] = [
        f"{r.dataset}, {r.num_clients} clients ({_sampled(getattr(r, 'fraction_train', 1.0))}), "
        f"{r.rounds} rounds, {r.num_free_riders} {r.free_rider.replace('_', ' ')}s"
        for r in detect.itertuples()
    ]
    for _, row in detect.sort_values(["setting", "runtime"]).iterrows():
        rec = {"setting": row["setting"], "runtime": row["runtime"], "wall s": f"{row['duration_s']:.0f}"}
        for d in _detectors(detect):
            rec[d] = f"{row[f'auc.{d}']:.3f}" if row[f"auc.{d}"] == row[f"auc.{d}"] else "–"
        rec["final accuracy"] = f"{row['final_accuracy']:.3f}"
        out.append(rec)
    return out


# ---- the command --------------------------------------------------------------------------------
def _grid_outputs(rows, out: FigureOut, what: str) -> list[Path]:
    detect = rows[(~rows["mitigate"]) & (rows["free_rider"] != "none")]
    keys = ["free_rider", "partition", "num_free_riders"]
    written = plot_detector_auc(detect, out, what) + plot_f1_by_round(detect, out, what)
    written += plot_accuracy(rows, out, what) or []
    ordered = _order(detect, keys)
    written += [
        out.write_text("auc_table", "md", markdown(auc_records(ordered, keys))),
        out.write_text("wins", "md", markdown(wins_records(ordered, keys))),
        out.write_text(
            "summary", "md", markdown(summary_records(_order(detect, ["free_rider"]), ["free_rider"]))
        ),
        out.write_text("acceptance", "md", acceptance(detect)),
    ]
    return written


def _research_outputs(rows, out: FigureOut, name: str, what: str) -> list[Path]:
    keys = ["dataset", "free_rider", "partition", "num_free_riders"]
    ordered = _order(rows, keys)
    row_keys = [
        (d, k) for d in sorted(set(rows["dataset"])) for k in sorted(set(rows["free_rider"]))
    ]  # as the tables
    written = plot_dotplot(
        rows,
        out,
        f"{name}_auc",
        _partitions(rows),
        row_keys,
        what,
        lambda key: f"{key[0]}, {key[1].replace('_', ' ')}",
    )
    written += [
        out.write_text(f"{name}_auc", "md", markdown(auc_records(ordered, keys))),
        out.write_text(f"{name}_f1", "md", markdown(auc_records(ordered, keys, "f1"))),
        out.write_text(f"{name}_rounds_to_detect", "md", markdown(detection_records(ordered, keys))),
        out.write_text(f"{name}_wins", "md", markdown(wins_records(ordered, keys))),
        out.write_text(
            f"{name}_summary",
            "md",
            markdown(summary_records(_order(rows, ["dataset", "partition"]), ["dataset", "partition"])),
        ),
    ]
    return written


@entrypoint("frida/figures", schema=FiguresConfig)
def main(cfg, run):
    results, scale = Path(cfg.results), cfg.scale.name
    stores = {
        e: load_store(results, e, scale) for e in ("grid", "research", "shakespeare", "canary", "bench")
    }
    stores["detect"] = latest_detect_rows(results, scale)
    if all(v is None for v in stores.values()):
        raise BadInput(
            f"no results under {results}/<experiment>/{scale}/ (grid, research, shakespeare, canary, "
            f"bench, detect); run `python -m papers.frida.grid` first"
        )
    from common.plotting import FigureOut, publish

    out = FigureOut(Path(cfg.out), scale)
    written: list[Path] = []
    for experiment, rows in stores.items():
        if rows is None:
            log.info("figures: no %s results at scale %s; its figures are left out", experiment, scale)
            continue
        if experiment == "grid":
            written += _grid_outputs(rows, out, rows["dataset"].iloc[0])
        elif experiment in ("research", "shakespeare"):
            written += _research_outputs(rows, out, experiment, ", ".join(dict.fromkeys(rows["dataset"])))
        elif experiment == "canary":
            written += plot_canary(rows, out, rows["dataset"].iloc[0]) or []
            written.append(out.write_text("canary_sweep", "md", markdown(canary_records(rows))))
        elif experiment == "bench":
            written += plot_overhead(rows, out) or []
            detectors, cost = overhead_records(rows)
            written.append(out.write_text("overhead", "md", markdown(detectors) + "\n" + markdown(cost)))
        elif experiment == "detect":
            written.append(out.write_text("runtimes", "md", markdown(runtime_records(rows))))
    for path in written:
        log.info("figures: %s", path)
    publish(run, written, scale)
    return [str(p) for p in written]


if __name__ == "__main__":
    main()
