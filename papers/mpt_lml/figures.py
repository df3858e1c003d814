"""Every mpt_lml figure and the README's results table, rebuilt from saved results only.

Reads <paths.results_dir>/mpt_lml/<experiment>/<scale>/summary.json (written by each entry point)
and the authors' curves in reference/; computes nothing but means and the plotted quantities. An
experiment that has not been run is skipped with a note. Figures and results_<scale>.md go to
<paths.figures_dir>/mpt_lml/, each name ending in its scale; with logger=wandb the figures are logged
as the run's images.

    python -m papers.mpt_lml.figures [scale=paper] [paths.results_dir=...] [logger=wandb]
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

import papers.mpt_lml.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.errors import BadInput
from papers.mpt_lml.reference import AUTHORS_DIMS, AUTHORS_HARDWARE, authors_curves, authors_per_token
from papers.mpt_lml.summary import load_summary, ok_rows

PAPER = "mpt_lml"
log = logging.getLogger(__name__)


def new_figure(*args, **kwargs):
    from common.plotting import new_figure as figure

    return figure(*args, **kwargs)


def save(fig, name, out, source=None):
    from common.plotting import save as save_figure

    return save_figure(fig, name, out, source)


def stamp(summary: dict, data: str) -> str:
    return f"{summary['device']} | {summary['scale']} scale | data: {data}"


def fig_convergence(s: dict, out) -> list[Path]:
    rows = ok_rows(s)
    dims = sorted({r["dim"] for r in rows})
    estimators = sorted({r["estimator"] for r in rows})
    fig, axes = new_figure(2, len(dims), figsize=(4.6 * len(dims), 6.4), squeeze=False, layout="constrained")
    for j, dim in enumerate(dims):
        exact = next(r["exact_lml"] for r in rows if r["dim"] == dim)
        exhaustive = next(r["exhaustive_mpt"] for r in rows if r["dim"] == dim)
        for i, est in enumerate(estimators):
            sel = sorted(
                (r for r in rows if r["dim"] == dim and r["estimator"] == est),
                key=lambda r: r["masks_per_size"],
            )
            p = np.array([r["masks_per_size"] for r in sel])
            mean = np.array([r["mean"] for r in sel]) - exact
            std = np.array([r["std"] for r in sel])
            ax = axes[0, j]
            for r in sel:
                ax.scatter(
                    [r["masks_per_size"]] * len(r["estimates"]),
                    np.array(r["estimates"]) - exact,
                    s=3,
                    color=f"C{i}",
                    alpha=0.3,
                    lw=0,
                )
            ax.plot(p, mean, "o-", color=f"C{i}", label=f"{est}: mean of replicates")
            ax.fill_between(p, mean - std, mean + std, color=f"C{i}", alpha=0.15)
            axes[1, j].loglog(p, std, "o-", color=f"C{i}", label=f"{est}: std over replicates")
            axes[1, j].loglog(p, std[0] * np.sqrt(p[0] / p), "--", color=f"C{i}", lw=0.8)
        ax = axes[0, j]
        ax.axhline(0, color="k", ls="--", lw=1, label="exact LML")
        title = f"D={dim}"
        if exhaustive is not None:
            title += f": exhaustive MPT − LML = {exhaustive - exact:.1e}"
        ax.set_title(title)
        ax.set_xscale("log")
        ax.set_xlabel("masks per size P (count, log scale)")
        ax.set_ylabel("MC cumulative MPT − LML (nats/datapoint)")
        ax.legend()
        axes[1, j].set_xlabel("masks per size P (count, log scale)")
        axes[1, j].set_ylabel("std over replicates (nats/datapoint); dashed: ∝ 1/√P")
        axes[1, j].legend()
    fig.suptitle("Monte Carlo cumulative MPT converges to the exact LML (PPCA); band: ±1 std")
    return save(fig, "convergence", out, stamp(s, "PPCA samples"))


def fig_curve(s: dict, out) -> list[Path]:
    rows = sorted(ok_rows(s), key=lambda r: (r["latent"], r["masks_per_size"]))
    latents = sorted({r["latent"] for r in rows})
    masks = sorted({r["masks_per_size"] for r in rows})
    fig, axes = new_figure(
        len(latents),
        len(masks),
        figsize=(4.2 * len(masks), 3.2 * len(latents)),
        squeeze=False,
        layout="constrained",
    )
    for r in rows:
        ax = axes[latents.index(r["latent"]), masks.index(r["masks_per_size"])]
        share = np.array(r["share_masked"])
        ax.bar(share, r["score"], width=share[0], color="C0", alpha=0.25)
        ax.plot(share, r["score"], color="C0", lw=1.2, label="S(m)")
        ax.axhline(r["exact_lml"] / len(share), color="k", ls="--", lw=1, label="LML / D")
        ax.set_title(
            f"K={r['latent']}, P={r['masks_per_size']}: area {r['area']:.2f}, LML {r['exact_lml']:.2f}"
        )
        ax.set_xlabel("share of tokens masked, m/D (fraction)")
        ax.set_ylabel("MPT score S(m) (nats/token)")
        ax.legend()
    fig.suptitle(
        f"MPT curves, D = {len(rows[0]['share_masked'])}: the area is the LML; "
        "above the dashed line a fixed rate over-states it"
    )
    return save(fig, "curve", out, stamp(s, "PPCA samples"))


def fig_ppca_training(s: dict, out) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 2, figsize=(10, 3.6), layout="constrained")
    colors = {}
    for r in rows:
        c = colors.setdefault(r["objective"], f"C{len(colors)}")
        label = r["objective"] if r["seed"] == rows[0]["seed"] else None
        for ax in axes:
            ax.plot(r["step"], r["lml"], color=c, lw=1.2, label=label)
        axes[0].plot(r["step"], r["objective_value"], color=c, lw=0.8, alpha=0.3)
    for ax in axes:
        ax.axhline(s["optimum_lml"], color="k", ls="--", lw=1, label="Tipping & Bishop optimum")
        ax.set_xlabel("Adam step (full batch; count)")
    axes[0].set_ylabel("exact LML (nats/datapoint); faint: the objective")
    axes[1].set_ylabel("exact LML (nats/datapoint)")
    axes[0].legend()
    axes[1].set_ylim(s["optimum_lml"] - 0.5, s["optimum_lml"] + 0.1)
    axes[1].set_title("zoom near the optimum")
    axes[0].set_title(f"PPCA (D={rows[0]['dim']}, K={rows[0]['latent']}) trained by MPT")
    return save(fig, "ppca_training", out, stamp(s, "PPCA samples"))


def fig_noise_to_lml(s: dict, out) -> list[Path]:
    r = ok_rows(s)[0]
    fig, axes = new_figure(1, 2, figsize=(10, 3.6), layout="constrained")
    cmap = __import__("matplotlib").colormaps["viridis"]
    curves = r["curves"]
    for i, c in enumerate(curves):
        axes[0].plot(
            r["share_masked"],
            c["score"],
            color=cmap(i / max(1, len(curves) - 1)),
            lw=1.2,
            label=f"step {c['step']}: area {c['area']:.1f}",
        )
    axes[0].set_xlabel("share of tokens masked, m/D (fraction)")
    axes[0].set_ylabel("MPT score S(m) (nats/token)")
    axes[0].legend(fontsize=6)
    steps = [c["step"] for c in curves]
    axes[1].plot(steps, [c["area"] for c in curves], "o", color="C1", label="area of the MPT curve")
    axes[1].plot(range(len(r["lml_trace"])), r["lml_trace"], color="C0", lw=1, label="exact LML")
    axes[1].axhline(r["optimum_lml"], color="k", ls="--", lw=1, label="closed-form optimum")
    axes[1].set_xscale("symlog", linthresh=10)
    axes[1].set_xlim(left=0)
    axes[1].set_xlabel("training step (count, symlog scale)")
    axes[1].set_ylabel("log marginal likelihood (nats/datapoint)")
    axes[1].legend()
    fig.suptitle("From noise to LML: the MPT curve rises as cumulative MPT trains PPCA")
    return save(fig, "noise_to_lml", out, stamp(s, "PPCA samples"))


def fig_bernoulli(s: dict, out) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 3, figsize=(14, 3.8), layout="constrained")
    for i, r in enumerate(rows):
        axes[0].plot(r["step"], r["train_lml"], color=f"C{i}", label=r["objective"])
        axes[0].plot(r["step"], r["objective_value"], color=f"C{i}", alpha=0.3, lw=0.8)
        axes[1].plot(r["step"], r["test_lml"], color=f"C{i}", label=r["objective"])
    axes[0].set_title("train images: exact LML (faint: the minibatch objective)")
    axes[1].set_title("held-out images: exact LML")
    for ax in axes[:2]:
        ax.set_xlabel("Adam step (count)")
        ax.set_ylabel("LML by quadrature (nats/image)")
        ax.set_ylim(bottom=min(r["test_lml"][-1] for r in rows) - 30)
        ax.legend()
    ax = axes[2]  # the paired difference: image-to-image variation of log p(x) cancels
    x = np.arange(len(rows))
    ax.errorbar(
        x,
        [r["mpt_cumulative_minus_lml_mean"] for r in rows],
        yerr=[r["mpt_cumulative_minus_lml_sem"] for r in rows],
        fmt="s",
        color="C3",
        capsize=3,
        label="cumulative MPT − quadrature LML (mean ± s.e. over images)",
    )
    ax.plot(
        x,
        [r["mpt_chain_minus_lml_mean"] for r in rows],
        "o",
        color="k",
        ms=3,
        label="chain rule along the orderings − LML (exact: 0)",
    )
    ax.axhline(0, color="k", lw=0.8)
    for xi, r in zip(x, rows):
        ax.annotate(
            f"LML {r['mpt_quadrature_lml_mean']:.1f}",
            (xi, 0),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=7,
        )
    ax.set_xticks(x, [f"trained by {r['objective']}" for r in rows])
    ax.set_ylabel("difference per test image (nats)")
    ax.set_title(f"{rows[0]['mpt_images']} test images, {rows[0]['mpt_orderings']} random ordering(s) each")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"Bernoulli latent-linear model (K={rows[0]['latent']}) on binarised {rows[0]['dataset']} "
        "(authors' exp_5): MPT trains it, and its cumulative score is the quadrature LML"
    )
    return save(
        fig, "bernoulli_digits", out, stamp(s, f"{rows[0]['dataset']}, {rows[0]['n_train']} train images")
    )


# ---- masked LMs ----------------------------------------------------------------------------------
SCORES = [  # (metric prefix, label): every score of a masked LM on the log p(x) scale
    ("cumulative", "cumulative MPT (orderings)"),
    ("orderings_chain", "chain rule along the orderings"),
    ("consistent_area", "consistent estimate from the rate curve"),
    ("authors_area", "authors' Riemann area (negated)"),
    ("pll", "PLL = D·S(1)"),
    ("left_to_right", "chain rule left to right"),
    ("fixed_0.15", "fixed 15%: D·S(0.15 D)"),
    ("fixed_0.5", "fixed 50%: D·S(0.5 D)"),
]


def by_model(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by model, in order of first appearance (one row per training seed)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["model"], []).append(r)
    return out


def with_bits(rows: list[dict]) -> list[dict]:
    """Rows with `bits_per_char`: the mean over the rate grid of the masked-token loss, in bits (one
    token is one character), the measure the authors' curves are compared on."""
    return [{**r, "bits_per_char": -float(np.mean(r["curve"])) / math.log(2)} for r in rows]


def seed_stat(rows: list[dict], key: str) -> tuple[float, float, int]:
    """Mean over a model's rows (seeds) and its standard error; for one row, the row's own error."""
    values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, 0
    if len(values) == 1:
        own = rows[0].get(key.removesuffix("_mean") + "_sem") if key.endswith("_mean") else None
        return float(values[0]), float(own) if own is not None else math.nan, 1
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), len(values)


def _curves(ax, groups: dict, key: str, title: str, per_seq_exact=None) -> None:
    for i, (model, rs) in enumerate(groups.items()):
        rs = [r for r in rs if r.get(key)]
        if not rs:
            continue
        curve = np.mean([r[key] for r in rs], axis=0)
        ax.plot(
            np.array(rs[0]["rates"]) * 100,
            curve,
            color=f"C{i}",
            lw=1.2,
            label=f"{model} ({len(rs)} seed{'s' if len(rs) > 1 else ''})",
        )
    first = next(iter(groups.values()))[0]
    ax.axhline(-first["log_vocab"], color="0.5", ls=":", lw=1, label="−log V (uniform guess)")
    if per_seq_exact is not None:
        ax.axhline(per_seq_exact / first["dims"], color="k", ls="--", lw=1, label="exact LML / D")
    ax.set_xlabel("masking rate (% of tokens)")
    ax.set_ylabel("mean log p of a masked token (nats)")
    ax.set_title(title)
    ax.legend(fontsize=6)


def _gaps(ax, groups: dict, reference: str | None, title: str) -> None:
    """Each score of each model, minus the exact LML (reference='exact') or as is, with error bars."""
    models = list(groups)
    width = 0.8 / len(SCORES)
    for j, (key, label) in enumerate(SCORES):
        means, errs, xs = [], [], []
        for i, model in enumerate(models):
            name = f"{key}_minus_exact_mean" if reference else f"{key}_mean"
            mean, sem, _ = seed_stat(groups[model], name)
            if math.isnan(mean):
                continue
            means.append(mean)
            errs.append(0 if math.isnan(sem) else sem)
            xs.append(i - 0.4 + (j + 0.5) * width)
        if means:
            ax.bar(xs, means, width, yerr=errs, color=f"C{j}", label=label, capsize=1.5)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(models)), models, fontsize=7)
    ax.set_ylabel("score − exact log p(x) (nats/sequence)" if reference else "score (nats/sequence)")
    ax.set_title(title)
    ax.legend(fontsize=5.5, ncol=2)


def fig_mlm_hmm(s: dict, out) -> list[Path]:
    groups = by_model(ok_rows(s))
    fig, axes = new_figure(1, 3, figsize=(16, 4.2), layout="constrained")
    _curves(axes[0], groups, "curve", "exact-count masks, all [MASK] (theory)", s.get("exact_lml_mean"))
    _curves(
        axes[1],
        {m: rs for m, rs in groups.items() if any(r.get("collator_curve") for r in rs)},
        "collator_curve",
        "HF collator, Bernoulli 80/10/10 (authors' pipeline; first seed)",
        s.get("exact_lml_mean"),
    )
    _gaps(
        axes[2],
        groups,
        "exact",
        "each score minus the exact LML (bars: s.e. over seeds; exact HMM: over sequences)",
    )
    axes[2].set_yscale("symlog", linthresh=1.0)
    fig.suptitle(
        "Masked LMs on an HMM language whose exact LML is known: the exact predictor's cumulative "
        "score and its chain rule recover it; PLL and the authors' area (negated) over-state it"
    )
    return save(fig, "mlm_hmm", out, stamp(s, "HMM samples"))


def fig_mlm_text(s: dict, out) -> list[Path]:
    groups = by_model(ok_rows(s))
    fig, axes = new_figure(1, 3, figsize=(16, 4.2), layout="constrained")
    _curves(axes[0], groups, "curve", "ours: tiny BERTs, exact-count masks")
    ref = authors_curves()
    for (model, dataset), g in ref.groupby(["model", "dataset"]):
        axes[1].plot(
            g["masking_rate"] * 100,
            g["neg_eval_loss"],
            color="C0" if model == "pretrained" else "C3",
            lw=1,
            alpha=0.7,
            label=f"{model} bert-base ({dataset}): area {s['authors_areas'][model][dataset]:.0f}",
        )
    axes[1].axhline(-math.log(30522), color="0.5", ls=":", lw=1, label="−log 30522")
    axes[1].set_title(
        f"authors: bert-base on GLUE, HF collator (area per {AUTHORS_DIMS} tokens; {AUTHORS_HARDWARE})",
        fontsize=7,
    )
    axes[1].set_xlabel("masking rate (% of tokens)")
    axes[1].set_ylabel("−eval_loss (nats per masked token)")
    axes[1].legend(fontsize=5, ncol=2)
    ax = axes[2]  # per character, so the two vocabularies compare
    labels, values, errs, colors = [], [], [], []
    for model, rs in groups.items():
        mean, sem, n = seed_stat(with_bits(rs), "bits_per_char")
        labels.append(f"ours: {model}")
        values.append(mean)
        errs.append(0 if math.isnan(sem) else sem)
        colors.append("C2")
    theirs = authors_per_token()
    for model in ("pretrained", "random"):
        bpc = [v["bits_per_char"] for v in theirs[model].values()]
        labels.append(f"authors: {model} bert-base")
        values.append(float(np.mean(bpc)))
        errs.append(float(np.std(bpc, ddof=1) / math.sqrt(len(bpc))))
        colors.append("C0" if model == "pretrained" else "C3")
    ax.barh(range(len(values)), values, xerr=errs, color=colors, capsize=2)
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.set_xlabel("area per character (bits/char; the rate-averaged masked-token loss)")
    ax.set_title("normalised across vocabularies (authors: mean ± s.e. over their 5 GLUE sets)", fontsize=8)
    fig.suptitle(
        "Character-level masked LMs: ours (tiny BERTs on local text, mean over seeds) beside the "
        "authors' bert-base curves, labelled as theirs"
    )
    return save(
        fig,
        "mlm_text",
        out,
        stamp(s, "local text") + f" | middle and right: authors' results, {AUTHORS_HARDWARE}",
    )


def fig_mlm_pretrained(s: dict, out) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 2, figsize=(12, 4.0), layout="constrained")
    for i, r in enumerate(rows):
        share = np.arange(1, r["dims"] + 1) / r["dims"]
        axes[0].plot(share, r["size_curve"], color=f"C{i}", lw=1.2, label=f"{r['name']} (D={r['dims']})")
    axes[0].axhline(-rows[0]["log_vocab"], color="0.5", ls=":", lw=1, label="−log 20 (uniform residue)")
    axes[0].set_xlabel("share of residues masked, m/D (fraction)")
    axes[0].set_ylabel("MPT score S(m) (nats per residue)")
    axes[0].set_title(f"{rows[0]['model']}: S(m) from {rows[0]['orderings']} random orderings")
    axes[0].legend(fontsize=7)
    ax = axes[1]
    keys = [k for k in SCORES if k[0] != "left_to_right"]
    width = 0.8 / len(keys)
    for j, (key, label) in enumerate(keys):
        ys = [r[f"{key}_mean"] for r in rows]
        errs = [
            r.get(f"{key.replace('_chain', '_chain')}_mc_sem", 0)
            if key in ("cumulative", "orderings_chain")
            else 0
            for r in rows
        ]
        ax.bar(
            np.arange(len(rows)) - 0.4 + (j + 0.5) * width,
            ys,
            width,
            yerr=errs,
            color=f"C{j}",
            label=label,
            capsize=2,
        )
    ax.set_xticks(
        range(len(rows)),
        [f"{r['name']}\nordering spread {r['ordering_spread']:.1f} nats" for r in rows],
        fontsize=7,
    )
    ax.set_ylabel("score (nats per sequence)")
    ax.set_title("every score on the log p(x) scale (error bars: s.e. over orderings)")
    ax.legend(fontsize=6, ncol=2)
    fig.suptitle(
        "A real pretrained masked LM (AntiBERTy, 25.8M parameters) on antibody sequences: PLL far "
        "above the cumulative score; the conditionals are inconsistent (spread > 0)"
    )
    return save(fig, "mlm_pretrained", out, stamp(s, ", ".join(r["name"] for r in rows)))


def fig_benchmark(b: dict, out) -> list[Path]:
    fig, ax = new_figure(1, 1, figsize=(7.5, 3.4), layout="constrained")
    names, cpu = [], []
    for key, row in b.items():
        if isinstance(row, dict) and "cpu_s" in row:
            names.append(key.replace("/", ": "))
            cpu.append(row["cpu_s"])
    colors = ["C2" if "loop" not in n else "C7" for n in names]
    ax.barh(range(len(names)), cpu, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"CPU time per call (s, log scale; best of {b['repeats']})")
    ax.set_title(
        f"D={b['dim']}, N={b['n']}, P={b['masks_per_size']} orderings ({b['masks']} masks), "
        f"{b['threads']} thread; orderings vs lean loop: "
        f"{b['data_mean/orderings']['speedup_cpu_vs_loop_lean']:.1f}×",
        fontsize=8,
    )
    return save(fig, "benchmark", out, f"{b['device']} | benchmark (the paper reports no timing)")


# ---- tables --------------------------------------------------------------------------------------
def _pm(mean, sem, digits=2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return (
        f"{mean:.{digits}f} ± {sem:.{digits}f}"
        if sem is not None and not math.isnan(sem)
        else f"{mean:.{digits}f}"
    )


def hmm_table(s: dict) -> str:
    """The HMM oracle: exact LML, cumulative MPT, PLL, authors' area, consistent estimator (± s.e.)."""
    groups = by_model(ok_rows(s))
    lines = [
        "| model | seeds | exact log p(x) | cumulative MPT | chain rule, orderings (spread) | PLL | "
        "fixed 15% | authors' area (negated) | consistent estimate | authors' − consistent (paired) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, rs in groups.items():

        def cell(key, rs=rs):
            mean, sem, _ = seed_stat(rs, f"{key}_mean")
            gap, gsem, _ = seed_stat(rs, f"{key}_minus_exact_mean")
            return f"{_pm(mean, sem)} (gap {gap:+.2f} ± {gsem:.2f})"

        spread, ssem, _ = seed_stat(rs, "ordering_spread")
        ex, exs, _ = seed_stat(rs[:1], "exact_lml_mean")
        lines.append(
            f"| {model} | {len(rs) if model != 'exact_hmm' else '–'} | {_pm(ex, exs)} | "
            f"{cell('cumulative')} | "
            f"{cell('orderings_chain')} ({spread:.3f}) | {cell('pll')} | {cell('fixed_0.15')} | "
            f"{cell('authors_area')} | {cell('consistent_area')} | "
            f"{_pm(*seed_stat(rs, 'authors_minus_consistent_mean')[:2])} |"
        )
    return "\n".join(lines) + "\n"


def pretrained_table(s: dict) -> str:
    lines = [
        "| sequence | D | cumulative MPT (± s.e. over orderings) | chain rule, orderings | ordering spread "
        "(chain rule) | PLL | PLL − cumulative | fixed 15% | fixed 50% | authors' area (negated) | "
        "consistent estimate | nats/residue (cumulative) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ok_rows(s):
        lines.append(
            f"| {r['name']} | {r['dims']} | {_pm(r['cumulative_mean'], r['cumulative_mc_sem'])} | "
            f"{_pm(r['orderings_chain_mean'], r['orderings_chain_mc_sem'])} | {r['ordering_spread']:.2f} | "
            f"{r['pll_mean']:.2f} | {r['pll_mean'] - r['cumulative_mean']:+.2f} | "
            f"{r['fixed_0.15_mean']:.2f} | "
            f"{r['fixed_0.5_mean']:.2f} | {r['authors_area_mean']:.2f} | {r['consistent_area_mean']:.2f} | "
            f"{r['cumulative_mean'] / r['dims']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def bernoulli_table(s: dict) -> str:
    lines = [
        "| trained by | test images | quadrature LML | cumulative MPT | MPT − LML | chain rule − LML | "
        "test LML (all test images; 2× nodes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ok_rows(s):
        lines.append(
            f"| {r['objective']} | {r['mpt_images']} × {r['mpt_orderings']} ordering | "
            f"{_pm(r['mpt_quadrature_lml_mean'], r['mpt_quadrature_lml_sem'])} | "
            f"{_pm(r['mpt_cumulative_mean'], r['mpt_cumulative_sem'])} | "
            f"{_pm(r['mpt_cumulative_minus_lml_mean'], r['mpt_cumulative_minus_lml_sem'], 3)} | "
            f"{r['mpt_chain_minus_lml_mean']:+.1e} | {r['final_test_lml']:.2f} "
            f"({r['test_lml_finer_rule']:.2f}) |"
        )
    return "\n".join(lines) + "\n"


def benchmark_table(b: dict) -> str:
    lines = [
        "| output | method | CPU s (best of {}) | wall s | orderings is × faster (CPU) |".format(
            b["repeats"]
        ),
        "|---|---|---|---|---|",
    ]
    for key, row in b.items():
        if isinstance(row, dict) and "cpu_s" in row:
            output, name = key.split("/")
            ratio = b[f"{output}/orderings"]["cpu_s"] and row["cpu_s"] / b[f"{output}/orderings"]["cpu_s"]
            lines.append(f"| {output} | {name} | {row['cpu_s']:.4f} | {row['wall_s']:.4f} | {ratio:.1f} |")
    return "\n".join(lines) + "\n"


def text_table(s: dict) -> str:
    lines = [
        "| model | seeds | cumulative (nats/seq) | PLL | ordering spread | authors' area | consistent | "
        "rate-averaged loss (bits/char) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, rs in by_model(ok_rows(s)).items():
        bits, bsem, _ = seed_stat(with_bits(rs), "bits_per_char")
        c, cs, n = seed_stat(rs, "cumulative_mean")
        p, ps, _ = seed_stat(rs, "pll_mean")
        sp, _, _ = seed_stat(rs, "ordering_spread")
        a, as_, _ = seed_stat(rs, "authors_area_mean")
        k, ks, _ = seed_stat(rs, "consistent_area_mean")
        lines.append(
            f"| {model} | {n} | {_pm(c, cs)} | {_pm(p, ps)} | {sp:.3f} | {_pm(-a, as_, 1)} | {_pm(k, ks)} | "
            f"{_pm(bits, bsem, 3)} |"
        )
    for model, per_task in authors_per_token().items():
        bpc = [v["bits_per_char"] for v in per_task.values()]
        lines.append(
            f"| authors: {model} bert-base (5 GLUE sets, {AUTHORS_HARDWARE}) | – | – | – | – | "
            f"{np.mean([v for v in s['authors_areas'][model].values()]):.1f} per 512 tokens | – | "
            f"{np.mean(bpc):.3f} |"
        )
    return "\n".join(lines) + "\n"


def results_table(summaries: dict[str, dict]) -> str:
    """The README's results table, as markdown, from the summaries."""
    lines = ["| experiment | setting | measured | reference |", "|---|---|---|---|"]
    if s := summaries.get("convergence"):
        top = max(x["masks_per_size"] for x in ok_rows(s))
        for r in ok_rows(s):
            if r["masks_per_size"] in (1, top):
                bias = r["mean"] - r["exact_lml"]
                lines.append(
                    f"| convergence | D={r['dim']}, {r['estimator']}, P={r['masks_per_size']}, "
                    f"{r['replicates']} replicates | MC mean − LML {bias:+.4f} ± {r['sem']:.4f} (sem), "
                    f"std {r['std']:.4f} | exact LML {r['exact_lml']:.4f} nats/datapoint |"
                )
    if s := summaries.get("curve"):
        for r in ok_rows(s):
            lines.append(
                f"| curve | D={len(r['share_masked'])}, K={r['latent']}, P={r['masks_per_size']} | "
                f"area {r['area']:.3f} | exact LML {r['exact_lml']:.3f} nats/datapoint |"
            )
    if s := summaries.get("ppca_training"):
        by = defaultdict(list)
        for r in ok_rows(s):
            by[r["objective"]].append(r)
        for obj, rs in by.items():
            gaps = ", ".join(f"{r['gap_to_optimum']:.4f}" for r in rs)
            final = np.mean([r["final_lml"] for r in rs])
            lines.append(
                f"| ppca_training | {obj}, {len(rs)} seeds | final LML {final:.4f} (gap to optimum per seed: "
                f"{gaps}) | T&B optimum {s['optimum_lml']:.4f} nats/datapoint |"
            )
    if s := summaries.get("noise_to_lml"):
        r = ok_rows(s)[0]
        first, last = r["curves"][0], r["curves"][-1]
        lines.append(
            f"| noise_to_lml | D={r['dim']}, K={r['latent']} | area {first['area']:.2f} → {last['area']:.2f} "
            f"(exact LML {first['lml']:.2f} → {last['lml']:.2f}) | "
            f"optimum {r['optimum_lml']:.2f} nats/datapoint |"
        )
    if s := summaries.get("bernoulli_digits"):
        for r in ok_rows(s):
            lines.append(
                f"| bernoulli_digits | {r['objective']} | train LML {r['initial_train_lml']:.2f} → "
                f"{r['final_train_lml']:.2f}, test {r['final_test_lml']:.2f} (2× nodes: "
                f"{r['test_lml_finer_rule']:.2f}) | nats/image |"
            )
    for name in ("mlm_hmm", "mlm_text"):
        if s := summaries.get(name):
            for model, rs in by_model(ok_rows(s)).items():
                c, cs, n = seed_stat(rs, "cumulative_mean")
                p, ps, _ = seed_stat(rs, "pll_mean")
                ref = f"{n} seed(s); PLL {_pm(p, ps)}"
                if "exact_lml_mean" in rs[0]:
                    d, ds, _ = seed_stat(rs, "cumulative_minus_exact_mean")
                    ref += f"; exact {rs[0]['exact_lml_mean']:.2f}, cumulative − exact {d:+.2f} ± {ds:.2f}"
                if model == "random_bert":
                    worst = max(abs(v + r["log_vocab"]) for r in rs for v in r["curve"])
                    ref += f"; curve within {worst:.3f} nats of −log V = {-rs[0]['log_vocab']:.3f}"
                a, as_, _ = seed_stat(rs, "authors_area_mean")
                lines.append(
                    f"| {name} | {model} | cumulative {_pm(c, cs)} nats/seq, area {-a:.1f} | {ref} |"
                )
    if s := summaries.get("mlm_pretrained"):
        for r in ok_rows(s):
            lines.append(
                f"| mlm_pretrained | {r['model']} {r['name']} (D={r['dims']}) | cumulative "
                f"{_pm(r['cumulative_mean'], r['cumulative_mc_sem'])} nats/seq, PLL {r['pll_mean']:.2f} | "
                f"ordering spread {r['ordering_spread']:.2f} nats |"
            )
    return "\n".join(lines) + "\n"


FIGURES = {
    "convergence": fig_convergence,
    "curve": fig_curve,
    "ppca_training": fig_ppca_training,
    "noise_to_lml": fig_noise_to_lml,
    "bernoulli_digits": fig_bernoulli,
    "mlm_hmm": fig_mlm_hmm,
    "mlm_text": fig_mlm_text,
    "mlm_pretrained": fig_mlm_pretrained,
}
TABLES = {
    "mlm_hmm": hmm_table,
    "mlm_pretrained": pretrained_table,
    "bernoulli_digits": bernoulli_table,
    "mlm_text": text_table,
}


@entrypoint("mpt_lml/figures")
def main(cfg, run):
    from common.plotting import FigureOut

    out = FigureOut(Path(cfg.out), cfg.scale.name)
    summaries, made = {}, []
    for name, draw in FIGURES.items():
        s = load_summary(cfg.paths.results_dir, name, cfg.scale.name)
        if s is None or not ok_rows(s):
            log.info(
                "%s: no results at scale=%s (run python -m papers.mpt_lml.%s)", name, cfg.scale.name, name
            )
            continue
        summaries[name] = s
        paths = draw(s, out)
        made += paths
        log.info("%s -> %s", name, ", ".join(str(p) for p in paths))
    if not summaries:
        raise BadInput(
            f"no mpt_lml results under {cfg.paths.results_dir}/mpt_lml at scale={cfg.scale.name}: "
            "run `make reproduce-mpt_lml` (or its experiments) first"
        )
    sections = [
        f"# mpt_lml results at scale={cfg.scale.name} (written by papers/mpt_lml/figures.py)\n",
        "## All experiments\n",
        results_table(summaries),
    ]
    for name, table in TABLES.items():
        if name in summaries:
            s = summaries[name]
            sections += [
                f"\n## {name} ({s['device']}, torch threads {s['torch_threads']}, {s['wall_s']:.0f} s)\n",
                table(s),
            ]
    bench = Path(cfg.paths.results_dir) / "mpt_lml" / "benchmark" / cfg.scale.name / "batched_vs_loop.json"
    if bench.exists():
        b = json.loads(bench.read_text())
        made += fig_benchmark(b, out)
        sections += [
            f"\n## benchmark ({b['device']}, {b['threads']} thread, {b['measure']})\n",
            benchmark_table(b),
        ]
    table = out.write_text("results", "md", "".join(sections))
    log.info("table -> %s", table)
    from common.plotting import publish

    publish(run, made, cfg.scale.name)
    return [str(p) for p in [*made, table]]


if __name__ == "__main__":
    main()
