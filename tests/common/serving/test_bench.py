"""The benchmark functions run and report what they claim (their numbers are measured, not asserted)."""

import pytest

from common.gpu_metrics import Monitor
from common.serving.bench.generate_ratio import generate_ratio
from common.serving.bench.overhead import timing_overhead


def test_generate_ratio_compares_the_same_work(tiny_engine):
    row = generate_ratio(tiny_engine, batch_size=2, prompt_len=6, new_tokens=8, repeats=1)
    assert row["same_tokens"]  # the engine and generate produced identical greedy tokens
    assert row["engine_decode_tok_s"] > 0 and row["e2e_ratio"] > 0


def test_overhead_reports_both_estimates(tiny_engine):
    with Monitor("cpu") as monitor:
        row = timing_overhead(tiny_engine, monitor, batch_size=2, prompt_len=6, new_tokens=8, repeats=2)
    assert row["bare_s_median"] > 0 and row["harness_s_median"] > 0
    assert row["mark_us"] > 0 and row["window_pair_us"] > 0
    assert row["overhead_pct_components"] == pytest.approx(
        100 * (8 * row["mark_us"] + 2 * row["window_pair_us"]) / 1e6 / row["bare_s_median"]
    )
