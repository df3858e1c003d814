"""The batch-size study (paper Figs 2-4) read from stored sweeps, beside the authors' H100 numbers.

    python -m papers.batching.study                 # after python -m papers.batching.sweep
    python -m papers.batching.study scale=paper

Nothing is measured here: the sweep (papers.batching.sweep, and make gpu-check's sweep where a GPU run
was committed) already stored throughput, ITL, KV bytes and the prefill/decode split per batch size.
This step puts them in the paper's terms (KV cache as a share of the device's memory, decode time
relative to batch 1, where throughput plateaus) and puts the authors' published measurements
(reference/) in the same terms, so figures.py only draws. Tables go to <result_dir>/:

    ours.csv                this project's curves, one row per (sweep curve, batch size)
    authors_background.csv  the authors' online ShareGPT sweep (Figs 2-3), one row per (model, cap)
    authors_offline.csv     the authors' offline profiler (Fig. 4), one row per (model, batch)
    summary.json            per curve: plateau batch, KV share there and at the largest batch, slowdowns
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.hardware import host_memory_bytes, spec_for_device
from common.results import ResultStore, ResultStoreError
from papers.batching import advisor

if TYPE_CHECKING:  # pandas is imported where the tables are read
    import pandas as pd

log = logging.getLogger(__name__)
CURVE = ["model", "workload", "engine", "dtype", "device", "device_name"]
OFFLINE_STEPS = "decode_steps"


def device_memory(device_name: str) -> tuple[float | None, str]:
    """(bytes, where the number comes from) for a sweep row's device."""
    if device_name.startswith("CPU"):
        return float(host_memory_bytes()), "RAM of the host that ran the study"
    key, spec = spec_for_device(device_name)
    if spec is None:
        return None, f"no spec sheet matches {device_name!r}"
    return float(spec.mem_bytes), f"spec sheet {key}"


def read_sweeps(patterns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Finished cells of every result store the patterns name; the files read."""
    import pandas as pd

    paths = sorted({p for pattern in patterns for p in glob.glob(pattern)})
    frames = []
    for path in paths:
        try:
            frame = ResultStore(path).load()
        except ResultStoreError as err:
            raise BadInput(str(err)) from None
        if not frame.empty:
            frames.append(frame.assign(source=path))
    if not frames:
        raise BadInput(
            f"sweeps: no finished sweep cells in {patterns}; run python -m papers.batching.sweep "
            "first (at the same scale)"
        )
    return pd.concat(frames, ignore_index=True), paths


def _ratio_to_first(values: pd.Series) -> pd.Series:
    return values / values.iloc[0]


def our_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (curve, batch size) in the paper's terms."""
    import pandas as pd

    rows = []
    for _, g in frame.groupby(CURVE, sort=False):
        g = g.sort_values("batch_size").copy()
        mem, mem_source = device_memory(str(g["device_name"].iloc[0]))
        per_batch = g["n_batches"].astype(float)
        g["decode_time_per_batch_s"] = g["decode_time_s"] / per_batch
        g["prefill_time_per_batch_s"] = g["prefill_time_s"] / per_batch
        has_one = int(g["batch_size"].iloc[0]) == 1
        g["decode_slowdown"] = _ratio_to_first(g["decode_time_per_batch_s"]) if has_one else np.nan
        g["throughput_gain"] = _ratio_to_first(g["total_throughput_tok_s"]) if has_one else np.nan
        g["decode_throughput_gain"] = _ratio_to_first(g["decode_throughput_tok_s"]) if has_one else np.nan
        g["throughput_of_best"] = g["total_throughput_tok_s"] / g["total_throughput_tok_s"].max()
        g["device_memory_bytes"] = mem
        g["device_memory_source"] = mem_source
        g["kv_pct_of_device"] = 100 * g["kv_cache_bytes"] / mem if mem else np.nan
        g["kv_pct_of_peak_memory"] = 100 * g["kv_cache_bytes"] / g["peak_memory_bytes"]
        rows.append(g)
    keep = CURVE + [
        "source",
        "batch_size",
        "n_requests",
        "total_throughput_tok_s",
        "output_throughput_tok_s",
        "decode_throughput_tok_s",
        "itl_ms_mean",
        "itl_ms_median",
        "itl_ms_p99",
        "tpot_ms_mean",
        "step_ms_mean",
        "kv_cache_bytes",
        "peak_memory_bytes",
        "device_memory_bytes",
        "device_memory_source",
        "kv_pct_of_device",
        "kv_pct_of_peak_memory",
        "prefill_time_per_batch_s",
        "decode_time_per_batch_s",
        "prefill_fraction",
        "decode_slowdown",
        "throughput_gain",
        "decode_throughput_gain",
        "throughput_of_best",
        "output_throughput_cv",
        "load_avg_1m",
    ]
    out = pd.concat(rows, ignore_index=True)
    return out[[c for c in keep if c in out.columns]]


def authors_background(reference: Path) -> pd.DataFrame:
    """Figs 2-3's runs with their KV use in GiB and as a share of the GPU (the pool shrinks with the cap)."""
    import pandas as pd

    sweep = _read(reference / "background_sweep.csv")
    memory = _read(reference / "server_memory.csv")
    rows = []
    for model, g in sweep.groupby("model", sort=False):
        profile = advisor.vllm_profile(memory, model, "background", str(reference / "server_memory.csv"))
        g = g.sort_values("max_num_seqs").copy()
        pool = np.array([profile.pool_bytes(c) for c in g["max_num_seqs"]])
        g["kv_pool_gib"] = pool / advisor.GiB
        g["kv_used_gib"] = g["max_kv_cache_usage_pct"] / 100 * pool / advisor.GiB
        g["device_memory_gib"] = profile.total_bytes / advisor.GiB
        g["kv_pct_of_device"] = 100 * g["kv_used_gib"] / g["device_memory_gib"]
        g["preempted"] = g["num_preemptions"] > 0
        g["throughput_gain"] = _ratio_to_first(g["total_token_throughput_tok_s"])
        g["throughput_of_best"] = g["total_token_throughput_tok_s"] / g["total_token_throughput_tok_s"].max()
        rows.append(g)
    return pd.concat(rows, ignore_index=True)


def authors_offline(reference: Path) -> pd.DataFrame:
    """Fig. 4's phase times per model, from the experiment the roofline calibration also uses (the
    unprofiled batch_evolution where it exists, else the one with the most batch sizes)."""
    import pandas as pd

    from papers.batching.calibrate import MODELS, offline_observations

    frame = _read(reference / "offline_phase_split.csv")
    rows = []
    for model in MODELS:
        experiment, _ = offline_observations(frame, model)
        g = frame[(frame["model"] == model) & (frame["experiment"] == experiment) & (frame["status"] == "ok")]
        g = g.sort_values("batch_size").copy()
        g["decode_throughput_tok_s"] = g["batch_size"] * g[OFFLINE_STEPS] / g["decode_time_s"]
        g["decode_slowdown"] = _ratio_to_first(g["decode_time_s"])
        g["decode_throughput_gain"] = _ratio_to_first(g["decode_throughput_tok_s"])
        g["prefill_fraction"] = g["prefill_time_s"] / (g["prefill_time_s"] + g["decode_time_s"])
        rows.append(g)
    return pd.concat(rows, ignore_index=True)


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"reference_dir: {path} is missing (the authors' data, papers/batching/reference)")
    return pd.read_csv(path)


def _num(x) -> float | None:
    """A JSON-safe number: NaN (a curve without batch 1) becomes null."""
    x = float(x)
    return x if np.isfinite(x) else None


def plateau(batch: np.ndarray, throughput: np.ndarray, fraction: float) -> int:
    """Index of the first batch whose throughput reaches `fraction` of the curve's best."""
    return int(np.flatnonzero(throughput >= fraction * throughput.max())[0])


def summarise(ours: pd.DataFrame, background: pd.DataFrame, offline: pd.DataFrame, fraction: float) -> dict:
    """Per curve: where throughput plateaus, how much of the memory the KV cache holds there and at the
    largest batch, and how much slower a decode step got."""
    out = {"ours": [], "authors_background": [], "authors_offline": []}
    for key, g in ours.groupby(CURVE, sort=False):
        b, t = g["batch_size"].to_numpy(), g["total_throughput_tok_s"].to_numpy()
        i = plateau(b, t, fraction)
        out["ours"].append(
            {
                **dict(zip(CURVE, key)),
                "batches": b.tolist(),
                "plateau_batch": int(b[i]),
                "throughput_at_plateau_of_best": _num(t[i] / t.max()),
                "best_batch": int(b[np.argmax(t)]),
                "throughput_gain_best_over_b1": _num(g["throughput_gain"].max()),
                "kv_pct_of_device_at_plateau": _num(g["kv_pct_of_device"].iloc[i]),
                "kv_pct_of_device_at_largest": _num(g["kv_pct_of_device"].iloc[-1]),
                "device_memory_source": g["device_memory_source"].iloc[0],
                "decode_slowdown_at_largest": _num(g["decode_slowdown"].iloc[-1]),
                "prefill_fraction_at_largest": _num(g["prefill_fraction"].iloc[-1]),
                "itl_ms_b1": _num(g["itl_ms_mean"].iloc[0]),
                "itl_ms_largest": _num(g["itl_ms_mean"].iloc[-1]),
            }
        )
    for model, g in background.groupby("model", sort=False):
        clean = g[~g["preempted"]]
        b, t = clean["max_num_seqs"].to_numpy(), clean["total_token_throughput_tok_s"].to_numpy()
        i = plateau(b, t, fraction)
        out["authors_background"].append(
            {
                "model": model,
                "hardware": "1x H100 64 GB, vLLM (authors)",
                "caps": b.tolist(),
                "plateau_cap": int(b[i]),
                "plateau_running_batch": _num(clean["mean_running_batch"].iloc[i]),
                "throughput_gain_best_over_b1": _num(t.max() / t[0]),
                "kv_pct_of_device_at_plateau": _num(clean["kv_pct_of_device"].iloc[i]),
                "kv_pct_of_device_at_largest_unpreempted": _num(clean["kv_pct_of_device"].iloc[-1]),
                "largest_unpreempted_cap": int(b[-1]),
            }
        )
    for model, g in offline.groupby("model", sort=False):
        out["authors_offline"].append(
            {
                "model": model,
                "hardware": "1x H100 64 GB, vLLM (authors)",
                "experiment": g["experiment"].iloc[0],
                "batches": g["batch_size"].tolist(),
                "decode_slowdown_at_largest": _num(g["decode_slowdown"].iloc[-1]),
                "decode_throughput_gain_at_largest": _num(g["decode_throughput_gain"].iloc[-1]),
                "prefill_fraction_at_largest": _num(g["prefill_fraction"].iloc[-1]),
            }
        )
    out["plateau_fraction"] = fraction
    return out


@entrypoint("batching/study")
def main(cfg, run):
    if not 0 < cfg.plateau_fraction <= 1:
        raise BadInput(f"plateau_fraction: {cfg.plateau_fraction} must be in (0, 1]")
    frame, paths = read_sweeps(list(cfg.sweeps))
    log.info("study: %d finished sweep cells from %s", len(frame), paths)
    ours = our_curves(frame)
    reference = Path(cfg.reference_dir)
    background, offline = authors_background(reference), authors_offline(reference)
    summary = {
        "hardware": run.info["hardware"]["device"],
        "sweeps": paths,
        **summarise(ours, background, offline, cfg.plateau_fraction),
    }
    out = run.result_dir
    for name, table in (("ours", ours), ("authors_background", background), ("authors_offline", offline)):
        write_atomic(out / f"{name}.csv", table.to_csv(index=False))
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    for s in summary["ours"]:
        s = {k: float("nan") if v is None else v for k, v in s.items()}
        log.info(
            "%s %s on %s: throughput reaches %.0f%% of its best at B=%d (x%.1f over B=1), KV cache "
            "%.3f%% of the device there, %.3f%% at B=%d; decode %.1fx slower than at B=1",
            s["model"],
            s["workload"],
            s["device_name"],
            100 * cfg.plateau_fraction,
            s["plateau_batch"],
            s["throughput_gain_best_over_b1"],
            s["kv_pct_of_device_at_plateau"],
            s["kv_pct_of_device_at_largest"],
            s["batches"][-1],
            s["decode_slowdown_at_largest"],
        )
    for s in summary["authors_background"]:
        log.info(
            "authors (H100) %s: plateau at cap %d, KV cache %.1f%% of the GPU there",
            s["model"],
            s["plateau_cap"],
            s["kv_pct_of_device_at_plateau"],
        )
    run.logger.table("study", ours)
    return summary


if __name__ == "__main__":
    main()
