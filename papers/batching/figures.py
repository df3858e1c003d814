"""Every batching figure and the results table, rebuilt from saved results only.

    python -m papers.batching.figures [scale=paper] [paths.results_dir=...] [logger=wandb]

Reads what the entry points wrote under <paths.results_dir>/batching/<experiment>/<scale>/ (the study's
tables, which already hold the authors' H100 numbers in the same terms, the breakdown's and the
replication's result stores, the BCA's JSON, the Nsight Compute summary) and draws; it computes nothing
but what is plotted. A step that has not run is skipped with a note; with no results at all the command
exits 2. Figures and results_<scale>.md go to <paths.figures_dir>/batching/, each name ending in its
scale; with logger=wandb the figures are logged as the run's images. Every panel says which hardware
its numbers come from: this project's runs (a CPU unless a GPU sweep was committed) or the authors'
H100 64 GB with vLLM.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.errors import BadInput

if TYPE_CHECKING:  # numpy, pandas and matplotlib are imported where a figure is drawn
    import pandas as pd

    from common.plotting import FigureOut

PAPER = "batching"
AUTHORS = "authors: 1x H100 64 GB, vLLM, fp16"
CLASSES = ("attention", "matmul", "other", "gap")
EXPERIMENTS = ("study", "breakdown", "ncu", "replicate", "bca", "calibrate", "tune")
log = logging.getLogger(__name__)


def save(fig, name: str, out: FigureOut, source: str | None = None) -> list[Path]:
    from common.plotting import save as save_figure

    return save_figure(fig, name, out, source)


def _figure(*args, **kwargs):
    """A constrained-layout figure with a strip left free at the bottom for the hardware stamp."""
    from common.plotting import new_figure

    fig, axes = new_figure(*args, layout="constrained", **kwargs)
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return fig, axes


# ---- reading --------------------------------------------------------------------------------------------
def _dir(results: Path, experiment: str, scale: str) -> Path:
    return results / experiment / scale


def load(results: Path, scale: str) -> dict:
    """Whatever results exist under `results` (the paper's results dir); a missing piece is simply
    absent from the dict."""
    import pandas as pd

    from common.results import ResultStore

    found = {}
    study = _dir(results, "study", scale)
    if (study / "summary.json").is_file():
        found["study"] = {
            "summary": json.loads((study / "summary.json").read_text()),
            **{n: pd.read_csv(study / f"{n}.csv") for n in ("ours", "authors_background", "authors_offline")},
        }
    store = _dir(results, "breakdown", scale) / "results.jsonl"
    if store.is_file() and not (frame := ResultStore(store).load()).empty:
        found["breakdown"] = frame
    for name in ("ncu", "replicate", "calibrate"):
        path = _dir(results, name, scale) / "summary.json"
        if path.is_file():
            found[name] = json.loads(path.read_text())
    tune = _dir(results, "tune", scale) / "tune.json"
    if tune.is_file():
        found["tune"] = json.loads(tune.read_text())
    bca = _dir(results, "bca", scale)
    runs = {p.stem.removeprefix("bca_"): json.loads(p.read_text()) for p in sorted(bca.glob("bca_*.json"))}
    if runs:
        found["bca"] = runs
    return found


def _curves(ours: pd.DataFrame):
    """(label, rows sorted by batch) per curve of this project's sweeps."""
    for (model, workload, device_name), g in ours.groupby(["model", "workload", "device_name"], sort=False):
        yield f"{model} {workload} | {device_name}", g.sort_values("batch_size")


def _hardware(ours: pd.DataFrame) -> str:
    return " + ".join(sorted(ours["device_name"].unique()))


# ---- Figs 2-4 -------------------------------------------------------------------------------------------
def fig_throughput_latency(study: dict, out: FigureOut) -> list[Path]:
    """Fig. 2: total throughput against mean ITL as the batch grows."""
    ours, bg = study["ours"], study["authors_background"]
    fig, (a, b) = _figure(1, 2, figsize=(10, 3.8))
    for i, (label, g) in enumerate(_curves(ours)):
        a.plot(g["itl_ms_mean"], g["total_throughput_tok_s"], "o-", color=f"C{i}", label=label)
        for x, y, bs in zip(g["itl_ms_mean"], g["total_throughput_tok_s"], g["batch_size"]):
            a.annotate(f"B={bs}", (x, y), textcoords="offset points", xytext=(3, -9), fontsize=6)
    a.set(
        xlabel="mean inter-token latency (ms)",
        ylabel="total throughput (tokens/s)",
        title="this project: static batches, hf engine",
    )
    a.legend(fontsize=6)
    _authors_lines(b, bg, "mean_itl_ms", "total_token_throughput_tok_s")
    b.set(
        xlabel="mean inter-token latency (ms)",
        ylabel="total throughput (tokens/s)",
        title=f"{AUTHORS}: ShareGPT, cap max_num_seqs",
    )
    fig.suptitle("Throughput vs latency as the batch grows (paper Fig. 2)")
    return save(fig, "fig2_throughput_vs_itl", out, f"{_hardware(ours)} | {AUTHORS}")


def _authors_lines(ax, bg: pd.DataFrame, x: str, y: str) -> None:
    """The authors' curves; runs that preempted (the paper leaves them out) drawn hollow."""
    for i, (model, g) in enumerate(bg.groupby("model", sort=False)):
        clean, pre = g[~g["preempted"]], g[g["preempted"]]
        ax.plot(clean[x], clean[y], "o-", color=f"C{i}", label=model)
        if len(pre):
            ax.plot(pre[x], pre[y], "o", mfc="none", color=f"C{i}")
    ax.plot([], [], "o", mfc="none", color="0.4", label="run with preemptions")
    ax.legend(fontsize=6)


def fig_throughput_kv(study: dict, out: FigureOut) -> list[Path]:
    """Fig. 3: throughput against the KV cache's share of the device memory."""
    ours, bg = study["ours"], study["authors_background"]
    fig, (a, b) = _figure(1, 2, figsize=(10, 3.8))
    for i, (label, g) in enumerate(_curves(ours)):
        a.plot(g["kv_pct_of_device"], g["total_throughput_tok_s"], "o-", color=f"C{i}", label=label)
    a.set(
        xscale="log",
        xlabel="KV cache (% of device memory; CPU: host RAM)",
        ylabel="total throughput (tokens/s)",
        title="this project",
    )
    a.legend(fontsize=6)
    _authors_lines(b, bg, "kv_pct_of_device", "total_token_throughput_tok_s")
    b.set(
        xscale="log",
        xlabel="KV cache in use (% of the GPU's 63.4 GiB)",
        ylabel="total throughput (tokens/s)",
        title=AUTHORS,
    )
    fig.suptitle("Throughput plateaus while most memory is unused (paper Fig. 3)")
    return save(fig, "fig3_throughput_vs_kv", out, f"{_hardware(ours)} | {AUTHORS}")


def fig_prefill_decode(study: dict, out: FigureOut) -> list[Path]:
    """Fig. 4: prefill and decode time per batch, and decode time relative to batch 1 beside the authors'."""
    ours, off = study["ours"], study["authors_offline"]
    fig, (a, b) = _figure(1, 2, figsize=(10, 3.8))
    for i, (label, g) in enumerate(_curves(ours)):
        a.plot(
            g["batch_size"], g["prefill_time_per_batch_s"], "s--", color=f"C{i}", label=f"prefill: {label}"
        )
        a.plot(g["batch_size"], g["decode_time_per_batch_s"], "o-", color=f"C{i}", label=f"decode: {label}")
        b.plot(
            g["batch_size"], g["decode_slowdown"], "o-", lw=2, color=f"C{i}", label=f"this project: {label}"
        )
    a.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="time per static batch (s)",
        title="this project: prefill vs decode",
    )
    a.legend(fontsize=6)
    for i, (model, g) in enumerate(off.groupby("model", sort=False)):
        b.plot(
            g["batch_size"], g["decode_slowdown"], "^--", color=f"C{i + 3}", label=f"authors (H100): {model}"
        )
    b.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="decode time / decode time at batch 1",
        title="decode slowdown, normalised (authors: 161+338 tokens)",
    )
    b.legend(fontsize=6)
    fig.suptitle("Prefill vs decode, and how much slower decoding a larger batch is (paper Fig. 4)")
    return save(fig, "fig4_prefill_decode", out, f"{_hardware(ours)} | {AUTHORS}")


def fig_scaling(study: dict, out: FigureOut) -> list[Path]:
    """Decode throughput relative to batch 1, ours beside the authors' offline profiler, against linear."""
    import numpy as np

    ours, off = study["ours"], study["authors_offline"]
    fig, ax = _figure(figsize=(6, 4))
    top = 1
    for i, (label, g) in enumerate(_curves(ours)):
        ax.plot(
            g["batch_size"],
            g["decode_throughput_gain"],
            "o-",
            lw=2,
            color=f"C{i}",
            label=f"this project: {label}",
        )
        top = max(top, g["batch_size"].max())
    for i, (model, g) in enumerate(off.groupby("model", sort=False)):
        ax.plot(
            g["batch_size"],
            g["decode_throughput_gain"],
            "^--",
            color=f"C{i + 3}",
            label=f"authors (H100): {model}",
        )
        top = max(top, g["batch_size"].max())
    grid = np.geomspace(1, top, 50)
    ax.plot(grid, grid, ":", color="0.5", label="linear (T(B) = B T(1))")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="decode throughput / at batch 1",
        title="decode throughput scaling, normalised",
    )
    ax.legend(fontsize=6)
    return save(fig, "throughput_scaling_normalised", out, f"{_hardware(ours)} | {AUTHORS}")


# ---- Fig. 5, Table I / Fig. 6 ----------------------------------------------------------------------------
def fig_breakdown(frame: pd.DataFrame, out: FigureOut) -> list[Path]:
    """Fig. 5: share of decode time per class, stacked, per batch size."""
    import numpy as np

    groups = list(frame.groupby(["model", "device_name"], sort=False))
    fig, axes = _figure(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, ((model, device_name), g) in zip(axes[0], groups):
        g = g.sort_values("batch_size")
        x = np.arange(len(g))
        bottom = np.zeros(len(g))
        for j, cls in enumerate(CLASSES):
            share = 100 * g[f"{cls}_share"].to_numpy()
            ax.bar(x, share, bottom=bottom, color=f"C{j}", label="CPU-side gaps" if cls == "gap" else cls)
            bottom += share
        ax.set_xticks(x, [str(b) for b in g["batch_size"]])
        ax.set(
            xlabel="batch size",
            ylabel="% of decode time",
            ylim=(0, 100),
            title=f"{model} | {device_name} ({int(g['decode_steps'].iloc[0])} decode steps)",
        )
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Where decode time goes (paper Fig. 5; CPU: aten ops' self time, GPU: kernel time)")
    return save(fig, "fig5_breakdown", out, " + ".join(frame["device_name"].unique()))


def fig_ncu(summary: dict, out: FigureOut) -> list[Path]:
    """Table I / Fig. 6: DRAM throughput and occupancy of attention and matmul kernels (GPU runs only)."""
    import numpy as np

    batches = {int(b): r for b, r in summary["batches"].items() if r.get("classes")}
    fig, axes = _figure(1, 2, figsize=(9, 3.4))
    width = 0.8 / max(len(batches), 1)
    for k, (metric, label) in enumerate(
        (
            ("dram_throughput_pct", "DRAM throughput (% of peak)"),
            ("achieved_occupancy_pct", "achieved occupancy (%)"),
        )
    ):
        ax = axes[k]
        for j, (batch, r) in enumerate(sorted(batches.items())):
            values = [(r["classes"].get(c) or {}).get(metric) or 0.0 for c in ("attention", "matmul")]
            ax.bar(np.arange(2) + j * width, values, width, label=f"B={batch}")
        ax.set_xticks(np.arange(2) + width * (len(batches) - 1) / 2, ["attention", "matmul"])
        ax.set(ylabel=label, ylim=(0, 100))
        ax.legend(fontsize=7)
    fig.suptitle(f"{summary['model']} decode step under Nsight Compute (paper Table I, Fig. 6)")
    return save(fig, "fig6_ncu", out, summary["hardware"])


# ---- replication and the BCA ------------------------------------------------------------------------------
def fig_replication(summary: dict, out: FigureOut) -> list[Path]:
    rows = summary["rows"]
    names = [r["setting"] for r in rows]
    fig, axes = _figure(1, 3, figsize=(11, 3.4))
    for ax, (key, label) in zip(
        axes,
        (
            ("output_throughput_tok_s", "aggregate output throughput (tok/s)"),
            ("itl_ms_mean", "mean ITL (ms)"),
            ("e2e_ms_mean", "mean end-to-end (ms)"),
        ),
    ):
        values = [r[key] for r in rows]
        ax.bar(range(len(rows)), values, color=["0.5"] + [f"C{i}" for i in range(len(rows) - 1)])
        ax.set_xticks(
            range(len(rows)), [f"{n}\n(baseline)" if n == summary["baseline"] else n for n in names]
        )
        ax.set(xlabel="replicas x batch cap", ylabel=label)
    fig.suptitle(
        f"{summary['model']}: N replicas vs one at its largest batch ({summary['engine']} engine, "
        f"{summary['num_requests']} requests) on {summary['hardware']}"
    )
    return save(fig, "replication", out, f"{summary['hardware']} | cores {summary['cores']}")


def fig_bca(runs: dict, out: FigureOut) -> list[Path]:
    """B_opt on the throughput-batch curves: this project's sweep and the authors' advisor sweep (260)."""
    panels = []
    if "own_sweep" in runs:
        panels.append(("this project", [r for r in runs["own_sweep"]["results"] if "error" not in r]))
    if "advisor" in runs:
        panels.append(
            (
                f"{AUTHORS}, output 260",
                [r for r in runs["advisor"]["results"] if "error" not in r and r["label"].endswith(" 260")],
            )
        )
    panels = [p for p in panels if p[1]]
    if not panels:
        return []
    fig, axes = _figure(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, results) in zip(axes[0], panels):
        for i, r in enumerate(results):
            pts = r["points"]
            ax.plot(
                [p["cap"] for p in pts], [p["throughput"] for p in pts], "o-", color=f"C{i}", label=r["label"]
            )
            ax.plot([r["b_opt_cap"]], [r["throughput"]], "*", ms=14, color=f"C{i}", mec="k")
        ax.plot([], [], "*", ms=10, color="0.6", mec="k", label="B_opt (BCA)")
        ax.set(xscale="log", xlabel="batch cap", ylabel="total throughput (tokens/s)", title=title)
        ax.legend(fontsize=6)
    fig.suptitle("The Batching Configuration Advisor's choice (SLO 3x TPOT at batch 32, epsilon 0.1)")
    return save(fig, "bca_choice", out)


def fig_bca_memory(runs: dict, out: FigureOut) -> list[Path]:
    """Fig. 12: the memory B_opt leaves free at output 390, by the authors' rule and arithmetic (their
    script, on their data: the paper's values) and by this project's default rule and vLLM's accounting."""
    import numpy as np

    if "paper_fig12" not in runs:
        return []
    sets = [("the authors' rule and arithmetic (paper_fig12)", runs["paper_fig12"]["results"])]
    if "advisor_eps0" in runs:
        sets.append(
            (
                "this project's default (best throughput, cap, engine memory; eps 0)",
                runs["advisor_eps0"]["results"],
            )
        )
    models = [r["model"] for r in sets[0][1] if r.get("output_len") == 390 and "error" not in r]
    if not models:
        return []
    fig, ax = _figure(figsize=(7.5, 3.6))
    width = 0.8 / len(sets)
    for k, (label, results) in enumerate(sets):
        by_model = {r["model"]: r for r in results if r.get("output_len") == 390 and "error" not in r}
        freed = [
            (by_model[m]["memory"] or {}).get("freed_pct", np.nan) if m in by_model else np.nan
            for m in models
        ]
        bars = ax.bar(
            np.arange(len(models)) + (k - (len(sets) - 1) / 2) * width,
            freed,
            width,
            color=f"C{k}",
            label=label,
        )
        for bar, m in zip(bars, models):
            if m in by_model:
                ax.annotate(
                    f"B={by_model[m]['b_opt']:g}\n{bar.get_height():.2f}%",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                )
    ax.set_xticks(np.arange(len(models)), models)
    ax.set(
        ylabel="GPU memory freed (% of 64 GB)",
        ylim=(0, 80),
        title="Fig. 12: memory left free at B_opt, output 390 tokens",
    )
    ax.legend(fontsize=6, loc="upper right")
    return save(fig, "bca_memory_freed", out, f"{AUTHORS} (their data, arithmetic on this project's CPU)")


def fig_step_model(summary: dict, out: FigureOut) -> list[Path]:
    """The step model's predictions of what it was not fitted on, against the authors' measured steps."""
    protocols = summary.get("protocols", {})
    panels = [
        (name, protocols[name])
        for name in ("batch_held_out", "model_held_out")
        if "points" in protocols.get(name, {})
    ]
    if not panels:
        return []
    fig, axes = _figure(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    titles = {
        "batch_held_out": f"fitted on batches <= {summary['batch_split']:g}; shown: the larger ones",
        "model_held_out": f"fitted on {', '.join(summary['transfer_fit'])}; shown: the others",
    }
    for ax, (name, protocol) in zip(axes[0], panels):
        for i, (key, pts) in enumerate(sorted(protocol["points"].items())):
            pts = sorted(pts, key=lambda p: p["batch"])
            marker = "o" if key.endswith("offline") else "s"
            ax.plot(
                [p["batch"] for p in pts],
                [p["measured_ms"] for p in pts],
                marker,
                color=f"C{i % 10}",
                ms=4,
                label=f"{key} measured",
            )
            ax.plot(
                [p["batch"] for p in pts],
                [p["predicted_ms"] for p in pts],
                "-",
                color=f"C{i % 10}",
                lw=1,
                label=f"predicted ({protocol['errors'][key]['step_mape_pct']:.1f}% MAPE)",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="batch (sequences; online: the mean running batch)",
            ylabel="time per decode step (ms)",
            title=titles[name],
        )
        ax.legend(fontsize=5, ncol=2)
    fig.suptitle("The step model on the authors' H100 steps it was not fitted on (offline o, background s)")
    return save(fig, "step_model_held_out", out, f"{AUTHORS}; fitted by fit_step_model on this project's CPU")


def fig_tune(summary: dict, out: FigureOut) -> list[Path]:
    """The tuner's short probes against the full sweep's curve, where the comparison ran."""
    if "compare" not in summary:
        return []
    c = summary["compare"]
    fig, ax = _figure(figsize=(6, 3.6))
    sweep = c["sweep_points"]
    ax.plot(
        [p["batch"] for p in sweep],
        [p["throughput"] for p in sweep],
        "o-",
        color="C0",
        label=f"full sweep ({c['sweep_time_s']:.0f} s of probes)",
    )
    ax.plot(
        [p["batch"] for p in summary["probes"]],
        [p["throughput"] for p in summary["probes"]],
        "s",
        color="C1",
        label=f"tuner's short probes, estimated ({c['tuner_time_s']:.1f} s)",
    )
    ax.axvline(c["sweep_b_opt"], color="C0", ls=":", label=f"sweep's B_opt = {c['sweep_b_opt']}")
    ax.axvline(
        summary["b_opt"],
        color="C1",
        ls="--",
        label=f"tuner's B_opt = {summary['b_opt']} (gap {100 * c['throughput_gap']:.1f}%)",
    )
    ax.set(
        xscale="log",
        xlabel="batch size (sequences)",
        ylabel="total throughput (tokens/s)",
        title=f"The online tuner: {summary['model']}, {summary['workload']}",
    )
    ax.legend(fontsize=6)
    return save(fig, "tune_vs_sweep", out, summary["device"])


# ---- the results table --------------------------------------------------------------------------------
def results_table(found: dict, scale: str) -> str:
    """The numbers the README quotes, as markdown."""
    lines = [f"# Batching reproduction: results at scale={scale}", ""]
    if "study" in found:
        s = found["study"]["summary"]
        lines += [
            "## Figs 2-4: this project's sweeps",
            "",
            "| curve | device | plateau batch | x over B=1 | KV % of memory at plateau | "
            "decode slowdown at largest B | prefill share at largest B |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in s["ours"]:
            lines.append(
                f"| {c['model']} {c['workload']} | {c['device_name']} | {c['plateau_batch']} | "
                f"{_f(c['throughput_gain_best_over_b1'], '.1f')} | "
                f"{_f(c['kv_pct_of_device_at_plateau'], '.3f')} | "
                f"{_f(c['decode_slowdown_at_largest'], '.1f')} (B={c['batches'][-1]}) | "
                f"{_f(c['prefill_fraction_at_largest'], '.2f')} |"
            )
        lines += [
            "",
            "## Figs 2-4: the authors' H100 measurements, same terms",
            "",
            "| model | plateau cap (running batch) | x over cap 1 | KV % of GPU at plateau | "
            "largest cap without preemption (KV %) |",
            "|---|---|---|---|---|",
        ]
        for c in s["authors_background"]:
            lines.append(
                f"| {c['model']} | {c['plateau_cap']} ({c['plateau_running_batch']:.0f}) | "
                f"{c['throughput_gain_best_over_b1']:.1f} | {c['kv_pct_of_device_at_plateau']:.1f} | "
                f"{c['largest_unpreempted_cap']} ({c['kv_pct_of_device_at_largest_unpreempted']:.1f}) |"
            )
        lines += [
            "",
            "| model (offline, 161+338) | experiment | decode slowdown at largest B | "
            "decode throughput x at largest B |",
            "|---|---|---|---|",
        ]
        for c in s["authors_offline"]:
            lines.append(
                f"| {c['model']} | {c['experiment']} | {c['decode_slowdown_at_largest']:.2f} "
                f"(B={c['batches'][-1]}) | {c['decode_throughput_gain_at_largest']:.1f} |"
            )
    if "breakdown" in found:
        lines += [
            "",
            "## Fig. 5: share of decode time",
            "",
            "| model | device | batch | attention | matmul | other | CPU gaps | ms/step |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in found["breakdown"].sort_values(["model", "batch_size"]).itertuples():
            lines.append(
                f"| {r.model} | {r.device_name} | {r.batch_size} | {r.attention_share:.0%} | "
                f"{r.matmul_share:.0%} | {r.other_share:.0%} | {r.gap_share:.0%} | {r.step_ms:.1f} |"
            )
    if "ncu" in found:
        n = found["ncu"]
        lines += ["", "## Table I / Fig. 6: Nsight Compute", ""]
        lines.append(f"- status: {n['status']}" + (f" ({n['reason']})" if n.get("reason") else ""))
    if "replicate" in found:
        r = found["replicate"]
        lines += [
            "",
            f"## Replication on {r['hardware']} ({r['engine']} engine, {r['num_requests']} requests)",
            "",
            "| setting | cores/replica | output tok/s | ITL ms | e2e ms | peak memory within share "
            "| load avg |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in r["rows"]:
            lines.append(
                f"| {row['setting']} | {row['cores_per_replica']} | {row['output_throughput_tok_s']:.1f} | "
                f"{row['itl_ms_mean']:.1f} | {row['e2e_ms_mean']:.0f} | {row['within_memory_share']} | "
                f"{_f(row['load_avg_1m'], '.1f')} |"
            )
        lines.append("")
        for c in r["comparison"]:
            spread = c.get("throughput_ratio_range") or [None, None]
            lines.append(
                f"- {c['setting']} vs {r['baseline']}: "
                f"throughput x{_f(c['output_throughput_tok_s_ratio'])} "
                f"(per repeat round x{_f(spread[0])} to x{_f(spread[1])}), "
                f"ITL x{_f(c['itl_ms_mean_ratio'])}, e2e x{_f(c['e2e_ms_mean_ratio'])}"
            )
    if "bca" in found and "own_sweep" in found["bca"]:
        from papers.batching.advise import markdown_table

        lines += [
            "",
            "## BCA on this project's sweep",
            "",
            markdown_table(found["bca"]["own_sweep"]["results"]),
        ]
    return "\n".join(lines).rstrip() + "\n"


def _f(value, spec: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def draw(found: dict, out: FigureOut) -> list[Path]:
    made = []
    if "study" in found:
        for fn in (fig_throughput_latency, fig_throughput_kv, fig_prefill_decode, fig_scaling):
            made += fn(found["study"], out)
    if "breakdown" in found:
        made += fig_breakdown(found["breakdown"], out)
    if "ncu" in found and found["ncu"]["status"] != "missing":
        made += fig_ncu(found["ncu"], out)
    if "replicate" in found and found["replicate"]["rows"]:
        made += fig_replication(found["replicate"], out)
    if "bca" in found:
        made += fig_bca(found["bca"], out)
        made += fig_bca_memory(found["bca"], out)
    if "calibrate" in found:
        made += fig_step_model(found["calibrate"], out)
    if "tune" in found:
        made += fig_tune(found["tune"], out)
    return made


@entrypoint("batching/figures")
def main(cfg, run):
    from common.plotting import FigureOut, publish

    scale = cfg.scale.name
    results = Path(cfg.results)
    found = load(results, scale)
    if not found:
        raise BadInput(
            f"no batching results under {results} at scale={scale}: run make reproduce-batching "
            f"(or python -m papers.batching.<experiment> scale={scale}) first"
        )
    for name in EXPERIMENTS:
        if name not in found:
            log.info("%s: no results at scale=%s (skipped)", name, scale)
    if "ncu" in found and found["ncu"]["status"] == "missing":
        log.info("fig6_ncu not drawn: %s", found["ncu"]["reason"])
    out = FigureOut(Path(cfg.out), scale)
    made = draw(found, out)
    table = out.write_text("results", "md", results_table(found, scale))
    for path in [*made, table]:
        log.info("figures: %s", path)
    publish(run, made, scale)
    return [str(p) for p in [*made, table]]


if __name__ == "__main__":
    main()
