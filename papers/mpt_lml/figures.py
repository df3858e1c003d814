"""Every mpt_lml figure and the README's results table, rebuilt from saved results only.

Reads <paths.results_dir>/mpt_lml/<experiment>/<scale>/summary.json (written by each entry point)
and the authors' curves in reference/; computes nothing but means and the plotted quantities. An
experiment that has not been run is skipped with a note. Figures and results_<scale>.md go to
<paths.figures_dir>/mpt_lml/, each name ending in its scale; with logger=wandb the figures are logged
as the run's images.

    python -m papers.mpt_lml.figures [scale=paper] [paths.results_dir=...] [logger=wandb]
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

import papers.mpt_lml.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.errors import BadInput
from common.plotting import FigureOut, new_figure, publish, save
from papers.mpt_lml.reference import AUTHORS_DIMS, authors_curves
from papers.mpt_lml.summary import load_summary, ok_rows

PAPER = "mpt_lml"
log = logging.getLogger(__name__)


def stamp(summary: dict, data: str) -> str:
    return f"{summary['device']} | {summary['scale']} scale | data: {data}"


def fig_convergence(s: dict, out: FigureOut) -> list[Path]:
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
        ax.set_xlabel("masks per size P")
        ax.set_ylabel("MC cumulative MPT − LML (nats/datapoint)")
        ax.legend()
        axes[1, j].set_xlabel("masks per size P")
        axes[1, j].set_ylabel("spread (nats/datapoint); dashed: ∝ 1/√P")
        axes[1, j].legend()
    fig.suptitle("Monte Carlo cumulative MPT converges to the exact LML (PPCA); band: ±1 std")
    return save(fig, "convergence", out, stamp(s, "PPCA samples"))


def fig_curve(s: dict, out: FigureOut) -> list[Path]:
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
        ax.set_xlabel("share of masked tokens m/D")
        ax.set_ylabel("MPT score S(m) (nats/token)")
        ax.legend()
    fig.suptitle(
        f"MPT curves, D = {len(rows[0]['share_masked'])}: the area is the LML; "
        "above the dashed line a fixed rate over-states it"
    )
    return save(fig, "curve", out, stamp(s, "PPCA samples"))


def fig_ppca_training(s: dict, out: FigureOut) -> list[Path]:
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
        ax.set_xlabel("Adam step (full batch)")
    axes[0].set_ylabel("exact LML (nats/datapoint); faint: the objective")
    axes[1].set_ylabel("exact LML (nats/datapoint)")
    axes[0].legend()
    axes[1].set_ylim(s["optimum_lml"] - 0.5, s["optimum_lml"] + 0.1)
    axes[1].set_title("zoom near the optimum")
    axes[0].set_title(f"PPCA (D={rows[0]['dim']}, K={rows[0]['latent']}) trained by MPT")
    return save(fig, "ppca_training", out, stamp(s, "PPCA samples"))


def fig_noise_to_lml(s: dict, out: FigureOut) -> list[Path]:
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
    axes[0].set_xlabel("share of masked tokens m/D")
    axes[0].set_ylabel("S(m) (nats/token)")
    axes[0].legend(fontsize=6)
    steps = [c["step"] for c in curves]
    axes[1].plot(steps, [c["area"] for c in curves], "o", color="C1", label="area of the MPT curve")
    axes[1].plot(range(len(r["lml_trace"])), r["lml_trace"], color="C0", lw=1, label="exact LML")
    axes[1].axhline(r["optimum_lml"], color="k", ls="--", lw=1, label="closed-form optimum")
    axes[1].set_xscale("symlog", linthresh=10)
    axes[1].set_xlim(left=0)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("nats/datapoint")
    axes[1].legend()
    fig.suptitle("From noise to LML: the MPT curve rises as cumulative MPT trains PPCA")
    return save(fig, "noise_to_lml", out, stamp(s, "PPCA samples"))


def fig_bernoulli(s: dict, out: FigureOut) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 2, figsize=(10, 3.6), layout="constrained")
    for i, r in enumerate(rows):
        axes[0].plot(r["step"], r["train_lml"], color=f"C{i}", label=r["objective"])
        axes[0].plot(r["step"], r["objective_value"], color=f"C{i}", alpha=0.3, lw=0.8)
        axes[1].plot(r["step"], r["test_lml"], color=f"C{i}", label=r["objective"])
    axes[0].set_title("train: exact LML (faint: minibatch objective)")
    axes[1].set_title("held-out digits: exact LML")
    for ax in axes:
        ax.set_xlabel("Adam step")
        ax.set_ylabel("LML by quadrature (nats/image)")
        ax.set_ylim(bottom=min(r["test_lml"][-1] for r in rows) - 8)
        ax.legend()
    fig.suptitle(f"Bernoulli latent-linear model (K={rows[0]['latent']}) on binarised {rows[0]['dataset']}")
    return save(fig, "bernoulli_digits", out, stamp(s, rows[0]["dataset"]))


def _mlm_axes(ax, rows: list[dict], key: str, title: str) -> None:
    for i, r in enumerate(rows):
        ax.plot(
            np.array(r["rates"]) * 100,
            r[key],
            color=f"C{i}",
            lw=1.2,
            label=f"{r['model']}: area {r['area' if key == 'curve' else 'collator_area']:.1f}",
        )
    ax.axhline(-rows[0]["log_vocab"], color="0.5", ls=":", lw=1, label="−log V")
    if "exact_lml_mean" in rows[0]:
        ax.axhline(
            rows[0]["exact_lml_mean"] / rows[0]["dims"], color="k", ls="--", lw=1, label="exact LML / D"
        )
    ax.set_xlabel("masking rate (%)")
    ax.set_ylabel("nats per masked token")
    ax.set_title(title)
    ax.legend(fontsize=6)


def fig_mlm_hmm(s: dict, out: FigureOut) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
    _mlm_axes(axes[0], rows, "curve", "exact-count masks, all [MASK] (theory)")
    _mlm_axes(axes[1], rows, "collator_curve", "HF collator, Bernoulli 80/10/10 (authors)")
    fig.suptitle("Masked LMs on an HMM language (exact LML known)")
    return save(fig, "mlm_hmm", out, stamp(s, "HMM samples"))


def fig_mlm_text(s: dict, out: FigureOut) -> list[Path]:
    rows = ok_rows(s)
    fig, axes = new_figure(1, 3, figsize=(14, 3.8), layout="constrained")
    _mlm_axes(axes[0], rows, "curve", "ours: exact-count masks")
    _mlm_axes(axes[1], rows, "collator_curve", "ours: HF collator 80/10/10")
    ref = authors_curves()
    for (model, dataset), g in ref.groupby(["model", "dataset"]):
        axes[2].plot(
            g["masking_rate"] * 100,
            g["neg_eval_loss"],
            color="C0" if model == "pretrained" else "C3",
            lw=1,
            alpha=0.7,
            label=f"{model} ({dataset}): {s['authors_areas'][model][dataset]:.0f}",
        )
    axes[2].axhline(-math.log(30522), color="0.5", ls=":", lw=1, label="−log 30522")
    axes[2].set_title(f"authors: bert-base on GLUE (area per {AUTHORS_DIMS} tokens)")
    axes[2].set_xlabel("masking rate (%)")
    axes[2].set_ylabel("−eval_loss (nats per masked token)")
    axes[2].legend(fontsize=5, ncol=2)
    fig.suptitle("Character-level masked LMs: tiny BERT on local text (ours) beside the authors' BERT curves")
    return save(fig, "mlm_text", out, stamp(s, "local text") + " | right: authors' A100 results")


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
            for r in ok_rows(s):
                ref = (
                    f"exact {r['exact_lml_mean']:.2f}; diff {r['diff_mean']:+.2f} ± {r['diff_sem']:.2f}"
                    if "exact_lml_mean" in r
                    else f"−D log V = {-r['dims'] * r['log_vocab']:.1f}"
                )
                if r["model"] == "random_bert":
                    worst = max(abs(v + r["log_vocab"]) for v in r["curve"])
                    ref += f"; curve within {worst:.3f} nats of −log V = {-r['log_vocab']:.3f}"
                lines.append(
                    f"| {name} | {r['model']} | cumulative {r['cumulative_mean']:.2f} nats/seq, area "
                    f"{r['area']:.1f}, collator area {r['collator_area']:.1f} | {ref} |"
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
}


@entrypoint("mpt_lml/figures")
def main(cfg, run):
    out = FigureOut(Path(cfg.out), cfg.scale.name)
    summaries, made = {}, []
    for name, draw in FIGURES.items():
        s = load_summary(cfg.paths.results_dir, name, cfg.scale.name)
        if s is None or not ok_rows(s):
            log.info("%s: no results at scale=%s (run python -m papers.mpt_lml.%s)", name, cfg.scale.name,
                     name)
            continue
        summaries[name] = s
        paths = draw(s, out)
        made += paths
        log.info("%s -> %s", name, ", ".join(str(p) for p in paths))
    if not summaries:
        raise BadInput(f"no mpt_lml results under {cfg.paths.results_dir}/mpt_lml at scale={cfg.scale.name}: "
                       "run `make reproduce-mpt_lml` (or its experiments) first")
    table = out.write_text("results", "md", results_table(summaries))
    log.info("table -> %s", table)
    publish(run, made, cfg.scale.name)
    return [str(p) for p in [*made, table]]


if __name__ == "__main__":
    main()
