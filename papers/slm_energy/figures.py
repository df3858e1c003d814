"""Every slm_energy figure and the results table, rebuilt from saved results only.

Reads, for this machine, <paths.results_dir>/slm_energy/{benchmark,replication}/<scale>/ and, for every
GPU check that ran, <paths.results_dir>/gpu/<device>/slm_energy/ (written by gpu_bench). Plots what
pareto.json, replication.json and the result stores hold; computes nothing but ratios for labels. Each
figure is stamped with the hardware it was measured on. A quantity that was not measured (energy on a
machine without NVML or RAPL) gets no figure, only a line saying why in the table. Figures and
results_<scale>.md (the README's results block) go to <paths.figures_dir>/slm_energy/, each name ending
in its scale (a GPU check's in gpu-<device>/); nothing else is written. With logger=wandb the figures
are logged as the run's images.

    python -m papers.slm_energy.figures [scale=paper] [paths.results_dir=...] [logger=wandb]
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

import papers.slm_energy.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.plotting import FigureOut, new_figure, publish, save

PAPER = "slm_energy"
log = logging.getLogger(__name__)
LATENCY_LABELS = {
    "e2e_ms_mean": "mean end-to-end latency (ms)",
    "ttft_ms_mean": "mean time to first token (ms)",
    "itl_ms_mean": "mean inter-token latency (ms)",
    "tpot_ms_mean": "mean time per output token (ms)",
}
PREDICTED = "predicted by common.serving.roofline from spec sheets (common.hardware); nothing measured"
ROOFLINE_LABELS = {
    "a100-40gb": "A100 40GB",
    "a100-80gb": "A100 80GB",
    "h100-sxm-80gb": "H100 80GB",
    "h100-64gb": "H100 64GB",
    "h200": "H200",
    "l4": "L4",
}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def sources(results: Path, gpu_results: Path, scale: str, out: Path) -> list[dict]:
    """This machine's results at `scale` (under `results`: <paths.results_dir>/slm_energy), then each GPU
    check's (under `gpu_results`: <paths.results_dir>/gpu), with where their figures go."""
    found = [
        {
            "name": f"this machine, scale={scale}",
            "out": FigureOut(out, scale),
            "pareto": _load(results / "benchmark" / scale / "pareto.json"),
            "replication_dir": results / "replication" / scale,
        }
    ]
    for folder in sorted(gpu_results.glob(f"*/{PAPER}")):
        found.append(
            {
                "name": f"GPU check on {folder.parent.name}",
                "out": folder.parent.name,
                "pareto": _load(folder / "benchmark" / "pareto.json"),
                "replication_dir": folder / "replication",
            }
        )
    for s in found:
        s["replication"] = _load(s["replication_dir"] / "replication.json")
        if isinstance(s["out"], str):  # a GPU check's figures carry its own label (gpu_check, ...)
            label = (s["pareto"] or s["replication"] or {}).get("scale", "gpu_check")
            s["out"] = FigureOut(out / f"gpu-{s['out']}", label)
    return [s for s in found if s["pareto"] or s["replication"]]


def device_of(summary: dict) -> str:
    """The engine's own name for the device where there is one (it carries the CPU thread count)."""
    groups = summary.get("models") or []
    return groups[0]["device_name"] if groups else summary["hardware"]["device"]


def stamp(summary: dict, data: str) -> str:
    """Which hardware measured it, at what load."""
    device = device_of(summary)
    load = summary.get("load_avg_1m")
    cores = summary["hardware"]["cpu_count"]
    busy = f" | load average {load[0]:.1f}-{load[1]:.1f} ({cores} cores)" if load else ""
    return f"{device} | scale={summary['scale']}{busy} | data: {data}"


def _leave_room(fig) -> None:
    """Keep the bottom strip free for the hardware stamp common.plotting.save writes there."""
    fig.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))


def _label(g: dict) -> str:
    size = f"{g['n_params'] / 1e6:.1f}M"
    return f"{g['model']} ({size}, {g['weights']} weights) | {g['workload']}"


def _grid(n: int, width: float = 4.0, height: float = 3.2):
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    _leave_room(fig)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def energy_missing(p: dict) -> list[dict]:
    """The groups whose energy was not measured: they get no energy panel, only a line in the table."""
    return [g for g in p["models"] if not g["energy"]["available"]]


def authors_claim(fig, claim: str) -> None:
    """The paper's claim this figure tests, labelled as the authors' (their measurements are on GPUs;
    the repo holds no copy of their numbers, so the claim is drawn as words, not as points)."""
    fig.text(
        0.01,
        -0.06,
        f"Authors' claim (arXiv 2404.03353, measured on their GPUs): {claim}.",
        ha="left",
        va="top",
        fontsize=7,
        color="0.15",
        style="italic",
    )


def fig_frontier(p: dict, out: FigureOut, cost: str) -> list[Path]:
    """Throughput against latency (cost="latency") or energy per token (cost="energy") per model; the
    energy frontier has a panel only for the models whose energy was measured (none: no figure)."""
    groups = p["models"]
    if cost == "energy":
        groups = [g for g in groups if g["energy"]["available"]]
        if not groups:
            return []
    fig, axes = _grid(len(groups))
    for ax, g in zip(axes, groups):
        pts = g["points"]
        key = g["latency_metric"] if cost == "latency" else "energy_per_output_token_j"
        front = f"on_{cost}_frontier"
        ax.set_title(_label(g), fontsize=7)
        ax.set_xlabel("output throughput (tok/s)")
        x = np.array([q["output_throughput_tok_s"] for q in pts])
        y = np.array([np.nan if q[key] is None else q[key] for q in pts], dtype=float)
        on = np.array([q[front] for q in pts])
        ax.scatter(x[~on], y[~on], color="0.6", label="dominated")
        order = np.argsort(x[on])
        ax.plot(x[on][order], y[on][order], "o-", color="C0", label="Pareto frontier")
        for q, xi, yi in zip(pts, x, y):
            ax.annotate(
                f"B={q['batch_size']}", (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6
            )
        star = g["pareto"]
        i = [q["batch_size"] for q in pts].index(star["batch"])
        grew = "" if star["saturated"] else " (still growing)"
        ax.plot(
            x[i],
            y[i],
            "*",
            color="C3",
            markersize=12,
            label=f"Pareto batch B*={star['batch']}{grew}, tol {star['tolerance']:.0%}",
        )
        if cost == "energy" and all(q.get("steady_energy_per_token_j") is not None for q in pts):
            ax.scatter(
                x,
                [q["steady_energy_per_token_j"] for q in pts],
                marker="x",
                color="C2",
                label="steady state (batch full)",
            )
        ax.set_yscale("log")
        ax.set_ylabel(
            {"latency": LATENCY_LABELS.get(g["latency_metric"], g["latency_metric"])}.get(
                cost, "energy per output token (J)"
            )
        )
        ax.legend(fontsize=6)
    name = {"latency": "frontier_latency", "energy": "frontier_energy"}[cost]
    fig.suptitle(f"Throughput vs {'latency' if cost == 'latency' else 'energy per token'} over batch sizes")
    authors_claim(
        fig,
        "throughput reaches a Pareto-optimal batch B*, past which larger batches cost latency "
        "(and energy) but add little throughput",
    )
    return save(fig, name, out, stamp(p, "pareto.json"))


def fig_memory(p: dict, out: FigureOut) -> list[Path]:
    """Memory the Pareto batch needs as a share of each device: measured here and predicted on the spec
    sheets, for the models run and for the predicted-only ones (no measured bars)."""
    groups = p["models"] + [
        {**e, "workload": f"{e['prompt_len']}+{e['output_len']} tok, predicted only", "pareto": None}
        for e in p.get("predicted", [])
    ]

    def here(key):
        return lambda g: (
            (None, None, True) if g["pareto"] is None else (g["pareto"][key], g["pareto"]["batch"], True)
        )

    bars = [
        ("measured peak, this device", here("memory_share_measured")),
        ("weights + KV (model), this device", here("memory_share_model")),
    ]
    for key in p["settings"]["roofline_devices"]:
        bars.append(
            (
                f"roofline: {ROOFLINE_LABELS.get(key, key)}",
                lambda g, key=key: (
                    g["roofline"][key]["memory_share"],
                    g["roofline"][key]["batch"],
                    g["roofline"][key]["fits"],
                ),
            )
        )
    fig, ax = new_figure(figsize=(max(6.0, 1.5 * len(groups) + 2), 3.8), layout="constrained")
    _leave_room(fig)
    width = 0.8 / len(bars)
    for j, (label, get) in enumerate(bars):
        for i, g in enumerate(groups):
            share, batch, fits = get(g)
            if share is None:
                continue
            xpos = i + (j - (len(bars) - 1) / 2) * width
            ax.bar(
                xpos,
                100 * share,
                width,
                color=f"C{j}",
                hatch=None if fits else "//",
                edgecolor="k",
                linewidth=0.3,
                label=label if label not in ax.get_legend_handles_labels()[1] else None,
            )
            ax.annotate(
                f"B={batch}",
                (xpos, 100 * share),
                ha="center",
                va="bottom",
                fontsize=5,
                rotation=90,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.axhline(100, color="k", lw=1)
    ax.axhline(
        100 * p["settings"]["memory_utilization"],
        color="k",
        lw=0.8,
        ls="--",
        label=f"usable ({p['settings']['memory_utilization']:.0%})",
    )
    ax.set_xticks(range(len(groups)), [f"{g['model']}\n{g['workload']}" for g in groups], fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("memory at the Pareto batch (% of device)")
    ax.set_title("Memory the Pareto-optimal batch needs (hatched: does not fit the device)")
    ax.legend(fontsize=6, ncol=2)
    authors_claim(fig, "for small language models the memory at B* is a small share of one accelerator")
    return save(fig, "pareto_memory", out, stamp(p, "pareto.json; roofline: spec sheets"))


def fig_roofline(p: dict, out: FigureOut) -> list[Path]:
    """Predicted throughput against batch on each spec-sheet device: where each model's Pareto batch
    lies (star) and where its memory runs out (dotted line)."""
    measured = [
        {**g, "prompt_len": g["prompt_len_mean"], "output_len": g["output_len_mean"]} for g in p["models"]
    ]
    entries = p["predicted"] or measured  # the paper's family where it was asked for
    devices = p["settings"]["roofline_devices"]
    fig, axes = _grid(len(devices), width=4.2, height=3.4)
    for ax, key in zip(axes, devices):
        for j, e in enumerate(entries):
            r = e["roofline"][key]
            if "curve" not in r:
                continue
            c = r["curve"]
            label = f"{e['model']} ({e['prompt_len']:.0f}+{e['output_len']:.0f} tok)"
            ax.plot(c["batch"], c["throughput_tok_s"], "-", color=f"C{j}", label=label)
            ax.plot(
                r["batch"],
                r["throughput_tok_s"],
                "*",
                color=f"C{j}",
                markersize=10,
                markeredgecolor="k" if r["fits"] else "C3",
            )
            if r["largest_batch_that_fits"] < c["batch"][-1]:
                ax.axvline(max(r["largest_batch_that_fits"], 1), color=f"C{j}", ls=":", lw=1)
        spec = e["roofline"][key]
        ax.set_title(
            f"{spec['device']} ({spec['capacity_bytes'] / 2**30:.0f} GiB, {spec['dtype']})", fontsize=7
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("predicted decode throughput (tok/s)")
        ax.legend(fontsize=5)
    fig.suptitle("Roofline: Pareto batch (star; red edge: does not fit) and memory limit (dotted)")
    return save(fig, "roofline_pareto", out, PREDICTED)


def fig_replication(r: dict, rows: list[dict], out: FigureOut) -> list[Path]:
    fig, (left, right) = new_figure(1, 2, figsize=(9.0, 3.4), layout="constrained")
    _leave_room(fig)
    for k in sorted({int(x["replicas"]) for x in rows}):
        sel = sorted((x for x in rows if int(x["replicas"]) == k), key=lambda x: x["total_batch"])
        left.plot(
            [x["total_batch"] for x in sel],
            [x["output_throughput_tok_s"] for x in sel],
            "o-",
            label=f"{k} instance{'s' if k > 1 else ''} (batch per instance = total / {k})",
        )
    left.set_xscale("log", base=2)
    left.set_xlabel("total batch (all instances)")
    left.set_ylabel("aggregate output throughput (tok/s)")
    left.set_title(f"{r['model']} | {r['workload']}", fontsize=8)
    left.legend(fontsize=6)
    names = ("throughput", "latency", "utilisation", "energy/token")
    keys = (
        "throughput_gain_at_best",
        "latency_ratio_at_best",
        "utilization_gain_at_best",
        "energy_per_token_ratio_at_best",
    )
    for j, gain in enumerate(r["gains"]):
        vals = [gain[k] for k in keys]
        xs = np.arange(len(names)) + j * 0.8 / max(len(r["gains"]), 1)
        right.bar(
            [x for x, v in zip(xs, vals) if v is not None],
            [v for v in vals if v is not None],
            0.8 / max(len(r["gains"]), 1),
            label=f"k={gain['replicas']} vs 1 instance",
        )
        for x, v in zip(xs, vals):
            right.annotate(
                "n/a" if v is None else f"{v:.2f}x", (x, v or 0), ha="center", va="bottom", fontsize=6
            )
    right.axhline(1, color="k", lw=0.8)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("ratio at each setting's best batch")
    right.set_title("k instances vs one instance at its best batch", fontsize=8)
    right.legend(fontsize=6)
    authors_claim(
        fig, "several replicas on one accelerator use it better than one instance at its best batch"
    )
    return save(fig, "replication", out, stamp(r, "replication.json, results.jsonl"))


def _fmt_bytes(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.0f} MiB"


def _pct(x) -> str:
    return "n/a" if x is None else (f"{100 * x:.2g}%" if x < 0.01 else f"{100 * x:.1f}%")


def _roofline_cells(entry: dict, devices: list[str]) -> str:
    out = []
    for k in devices:
        r = entry["roofline"][k]
        fits = "fits" if r["fits"] else f"does NOT fit (max {r['largest_batch_that_fits']})"
        out.append(f"B*={r['batch']}, {_pct(r['memory_share'])}, {fits}, {r['bound']['step']}-bound")
    return " | ".join(out)


def benchmark_rows(p: dict) -> list[str]:
    devices = p["settings"]["roofline_devices"]
    names = " | ".join(f"roofline {ROOFLINE_LABELS.get(k, k)}" for k in devices)
    load = p.get("load_avg_1m") or [float("nan")] * 2
    lines = [
        f"Benchmark on **{device_of(p)}** (host `{p['hardware']['host']}`, load average "
        f"{load[0]:.1f} to {load[1]:.1f} on {p['hardware']['cpu_count']} cores; {_took(p)}), "
        f"engine {p['sweep']['engine']}, "
        f"{p['sweep']['dtype']}, median of {p['sweep']['repeats']}. B* = the smallest frontier batch "
        f"that no larger batch beats by more than {p['settings']['tolerance']:.0%}; memory as a share "
        "of the device; roofline columns: predicted B*, its weights + KV cache, whether it fits in "
        f"{p['settings']['memory_utilization']:.0%} of the device, and whether a decode step at B* is "
        "memory- or compute-bound.",
        "",
        "| model | workload | B* (largest run) | tok/s at B* | e2e ms at B* | memory at B*: measured "
        f"peak / weights + KV | energy per token at B* | roofline B* here | {names} |",
        "|" + "---|" * (8 + len(devices)),
    ]
    for g in p["models"]:
        s, e = g["pareto"], g["energy"]
        energy = (
            f"{e['pareto_energy_per_token_j']:.3g} J"
            if e["available"]
            else "not measured: " + e["missing_reason"].split(" (")[0]
        )
        grew = "" if s["saturated"] else ", still growing"
        memory = (
            f"{_fmt_bytes(s['peak_memory_bytes'])} ({_pct(s['memory_share_measured'])}) / "
            f"{_fmt_bytes(s['memory_bytes_model'])} ({_pct(s['memory_share_model'])}) of "
            f"{s['capacity_bytes'] / 2**30:.0f} GiB"
        )
        here = g["roofline_this_device"]
        here = f"{here['batch']} ({here['spec']})" if "batch" in here else "n/a"
        lines.append(
            f"| {g['model']} ({g['n_params'] / 1e6:.1f}M) | {g['workload']} | {s['batch']} "
            f"({s['largest_batch']}{grew}) | {s['throughput_tok_s']:.0f} | {s['latency_ms']:.0f} | "
            f"{memory} | {energy} | {here} | {_roofline_cells(g, devices)} |"
        )
    if p.get("predicted"):
        lines += [
            "",
            "Predicted only (roofline on the spec sheets, fp16, not run here):",
            "",
            f"| model | lengths | {names} |",
            "|" + "---|" * (2 + len(devices)),
        ]
        for e in p["predicted"]:
            lines.append(
                f"| {e['model']} ({e['n_params'] / 1e6:.0f}M) | {e['prompt_len']}+"
                f"{e['output_len']} | {_roofline_cells(e, devices)} |"
            )
    return lines


def replication_rows(r: dict) -> list[str]:
    load = r.get("load_avg_1m") or [float("nan")] * 2
    lines = [
        f"Replication of {r['model']} ({r['workload']}) on **{r['hardware']['device']}**, "
        f"cores {r.get('cores')} split between the instances, load average {load[0]:.1f} to "
        f"{load[1]:.1f}; {_took(r)}:",
        "",
        "| instances | best batch per instance | tok/s | e2e ms | utilisation | against 1 instance at "
        "its best batch | against 1 instance at equal total batch (geometric mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    gains = {g["replicas"]: g for g in r["gains"]}
    for k, b in sorted(r["per_k"].items(), key=lambda kv: int(kv[0])):
        g = gains.get(int(k))
        versus = (
            "baseline"
            if g is None
            else (
                f"throughput x{g['throughput_gain_at_best']:.2f}, latency x{g['latency_ratio_at_best']:.2f}"
            )
        )
        equal = (
            "baseline"
            if g is None
            else (
                "n/a"
                if g["geomean_gain_same_total_batch"] is None
                else f"throughput x{g['geomean_gain_same_total_batch']:.2f} over totals "
                f"{sorted(int(t) for t in g['throughput_gain_same_total_batch'])}"
            )
        )
        util = "n/a" if b["utilization_pct"] is None else f"{b['utilization_pct']:.0f}%"
        lines.append(
            f"| {k} | {b['best_batch_per_instance']} | {b['output_throughput_tok_s']:.0f} | "
            f"{b['e2e_ms_mean']:.0f} | {util} | {versus} | {equal} |"
        )
    return lines


def _took(summary: dict) -> str:
    elapsed = summary.get("elapsed_s")
    return "run time not recorded" if elapsed is None else f"the measuring run took {elapsed:.0f} s"


def results_table(src: dict, made: list[Path], table_dir: Path) -> str:
    """The results, as markdown, from pareto.json and replication.json, with the figures drawn from
    them (linked from `table_dir`, where the table is written), the hardware each came from, and a line
    for each quantity that was not measured."""
    lines = [f"#### {src['name']}", ""]
    if src["pareto"]:
        lines += benchmark_rows(src["pareto"]) + [""]
    if src["replication"]:
        lines += replication_rows(src["replication"]) + [""]
    scale = src["out"].scale
    for png in (m for m in made if m.suffix == ".png"):
        stem = png.stem.removesuffix(f"_{scale}")
        summary = src["replication"] if stem == "replication" else src["pareto"]
        origin = f"measured on {device_of(summary)}, scale={summary['scale']}"
        if stem == "roofline_pareto":
            origin = PREDICTED
        elif stem == "pareto_memory":
            origin += "; the A100/H100 bars are roofline predictions"
        link = Path(os.path.relpath(png, table_dir)).as_posix()
        lines.append(f"- `{png.name}` ({origin}): ![{stem}]({link})")
    if src["pareto"] and energy_missing(src["pareto"]):
        missing = energy_missing(src["pareto"])
        why = sorted({g["energy"]["missing_reason"].split(" (")[0] for g in missing})
        lines.append(
            f"- energy per token: not measured for {', '.join(g['model'] for g in missing)} on "
            f"{device_of(src['pareto'])} ({'; '.join(why)}); no energy frontier is drawn for them"
        )
    return "\n".join(lines) + "\n"


@entrypoint("slm_energy/figures")
def main(cfg, run):
    from common.results import ResultStore

    scale, out = cfg.scale.name, Path(cfg.out)
    found = sources(Path(cfg.results), Path(cfg.paths.results_dir) / "gpu", scale, out)
    if not found:
        log.info(
            "no slm_energy results under %s at scale=%s (run make reproduce-slm_energy)", cfg.results, scale
        )
        return []
    tables, made = [], []
    for src in found:
        drawn = []
        if p := src["pareto"]:
            drawn += fig_frontier(p, src["out"], "latency") + fig_frontier(p, src["out"], "energy")
            drawn += fig_memory(p, src["out"]) + fig_roofline(p, src["out"])
            if energy_missing(p):
                log.info(
                    "%s: energy not measured for %s; no energy frontier for them",
                    src["name"],
                    ", ".join(g["model"] for g in energy_missing(p)),
                )
        if r := src["replication"]:
            rows = [
                x
                for x in ResultStore(src["replication_dir"] / "results.jsonl").load().to_dict("records")
                if x["model"] == r["model"] and x["workload"] == r["workload"]
            ]
            drawn += fig_replication(r, rows, src["out"])
        log.info("%s -> %s", src["name"], ", ".join(str(m) for m in drawn if m.suffix == ".png"))
        tables.append(results_table(src, drawn, out))
        made += drawn
    table = FigureOut(out, scale).write_text("results", "md", "\n".join(tables))
    log.info("table -> %s", table)
    publish(run, made, scale)
    return [str(m) for m in [*made, table]]


if __name__ == "__main__":
    main()
