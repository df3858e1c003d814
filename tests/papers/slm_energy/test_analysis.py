"""The Pareto analysis on hand-built result rows, and its roofline prediction against hand arithmetic."""

import math

import pandas as pd
import pytest

from common.hardware import get_spec
from papers.slm_energy.analysis import Settings, analyse_group, kv_bytes, predict_pareto

SETTINGS = Settings(
    tolerance=0.05,
    latency_metric="e2e_ms_mean",
    roofline_devices=("h100-sxm-80gb",),
    roofline_dtype="fp16",
    memory_utilization=0.9,
    max_batch=4096,
)


def rows(energy=None):
    batches = [1, 2, 4, 8]
    tput = [10.0, 19.0, 30.0, 31.0]
    e2e = [1.0, 2.0, 3.0, 4.0]
    energy = energy or [None] * 4
    return pd.DataFrame(
        {
            "model": "opt-tiny",
            "workload": "fixed-8-4",
            "engine": "hf",
            "device": "cpu",
            "device_name": "CPU: test",
            "precision": "fp32",
            "n_params": 1000,
            "weights": "random",
            "workload_prompt_mean": 8.0,
            "workload_output_mean": 4.0,
            "batch_size": batches,
            "output_throughput_tok_s": tput,
            "e2e_ms_mean": e2e,
            "energy_per_output_token_j": energy,
            "peak_memory_bytes": [100.0, 110.0, 120.0, 140.0],
            "kv_cache_bytes": [1.0, 2.0, 4.0, 8.0],
            "energy_missing_reason": None if energy[0] is not None else "no RAPL here",
        }
    )


def test_pareto_batch_memory_and_missing_energy_of_hand_built_rows():
    out = analyse_group(rows(), SETTINGS, (1000, "test capacity"), (None, "no profile"))
    p = out["pareto"]
    assert p["batch"] == 4 and p["saturated"]  # 31 <= 1.05 * 30
    assert p["memory_share_measured"] == pytest.approx(120 / 1000)
    weights = 1000 * 4  # fp32
    assert p["memory_bytes_model"] == weights + 4 * (8 + 4) * kv_bytes("opt-tiny", "fp32")
    assert out["energy"] == {**out["energy"], "available": False, "missing_reason": "no RAPL here"}
    assert not any(q["on_energy_frontier"] for q in out["points"])
    assert all(q["on_latency_frontier"] for q in out["points"])
    assert out["roofline_this_device"] == {"missing_reason": "no profile"}
    assert set(out["roofline"]) == {"h100-sxm-80gb"}


def test_energy_frontier_and_cheapest_batch():
    out = analyse_group(rows([4.0, 2.0, 1.5, 1.6]), SETTINGS, (1000, "test"), (None, "no profile"))
    e = out["energy"]
    assert e["available"] and e["min_energy_batch"] == 4 and e["pareto_energy_per_token_j"] == 1.5
    # B=8 is faster than B=4 but costs more per token: both on the frontier; B=1, B=2 dominated by B=4
    assert [q["on_energy_frontier"] for q in out["points"]] == [False, False, True, True]


def test_roofline_memory_at_the_predicted_pareto_batch_by_hand():
    spec = get_spec("h100-sxm-80gb")
    r = predict_pareto("opt-1.3b", spec, "fp16", 161, 338, SETTINGS)
    per_sequence = (161 + 338) * 196_608  # OPT-1.3B: 2 * 24 layers * 2048 * 2 bytes per token
    assert r["kv_bytes_per_sequence"] == per_sequence
    assert r["memory_bytes"] == r["weights_bytes"] + r["batch"] * per_sequence
    assert r["memory_share"] == pytest.approx(r["memory_bytes"] / (80 * 2**30))
    assert r["largest_batch_that_fits"] == math.floor((0.9 * 80 * 2**30 - r["weights_bytes"]) / per_sequence)
    assert r["fits"] == (r["memory_bytes"] <= 0.9 * 80 * 2**30)
    # the saturation rule on the predicted curve: nothing past B* gains > 5%, something past B*/2 does
    c = r["curve"]
    later = [t for b, t in zip(c["batch"], c["throughput_tok_s"]) if b > r["batch"]]
    assert max(later) <= 1.05 * r["throughput_tok_s"]
    half = c["batch"].index(r["batch"] // 2)
    assert max(c["throughput_tok_s"][half + 1 :]) > 1.05 * c["throughput_tok_s"][half]


def test_smaller_models_need_a_smaller_share_of_the_device():
    """The paper's point in the model's terms: OPT-125M's Pareto batch fits an A100 40GB with room to
    spare; OPT-2.7B's needs more of it than OPT-125M's."""
    spec = get_spec("a100-40gb")
    small = predict_pareto("opt-125m", spec, "fp16", 161, 338, SETTINGS)
    large = predict_pareto("opt-2.7b", spec, "fp16", 161, 338, SETTINGS)
    assert small["fits"] and small["memory_share"] < 0.5
    assert large["memory_share"] > small["memory_share"]
