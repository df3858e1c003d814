"""Serving statistics on hand-made records whose TTFT, TPOT, ITL and throughput are known."""

import numpy as np
import pytest

from common.serving.engine import BatchResult, RequestRecord, StepRecord
from common.serving.metrics import median_over_repeats, summarise, summarise_online


def batch(step_times, lengths, prompt_len=4):
    clock = np.cumsum(step_times).tolist()
    steps = [
        StepRecord(
            i,
            "prefill" if i == 0 else "decode",
            t,
            sum(n > i for n in lengths),
            sum(n > i for n in lengths),
            prompt_len + i,
        )
        for i, t in enumerate(step_times)
    ]
    requests = [RequestRecord(i, prompt_len, n, clock[:n]) for i, n in enumerate(lengths)]
    return BatchResult(
        "hf",
        "m",
        "cpu",
        "fp32",
        steps,
        requests,
        total_time_s=float(sum(step_times)),
        peak_memory_bytes=100,
        kv_cache_bytes=50,
    )


def test_one_batch():
    # prefill 0.1 s, then decode steps of 0.01, 0.02, 0.03 s; requests of 4 and 2 tokens
    m = summarise([batch([0.1, 0.01, 0.02, 0.03], [4, 2])])
    assert m["output_tokens"] == 6 and m["input_tokens"] == 8 and m["n_requests"] == 2
    assert m["wall_time_s"] == pytest.approx(0.16)
    assert m["output_throughput_tok_s"] == pytest.approx(6 / 0.16)
    assert m["total_throughput_tok_s"] == pytest.approx(14 / 0.16)
    assert m["request_throughput_rps"] == pytest.approx(2 / 0.16)
    assert m["ttft_ms_mean"] == pytest.approx(100.0)
    # TPOT per request: (0.16 - 0.1) / 3 and (0.11 - 0.1) / 1
    assert m["tpot_ms_mean"] == pytest.approx(1e3 * (0.02 + 0.01) / 2)
    # ITL pools every gap: 0.01, 0.02, 0.03 and 0.01
    assert m["itl_ms_mean"] == pytest.approx(1e3 * 0.07 / 4)
    assert m["itl_ms_median"] == pytest.approx(15.0)
    assert m["e2e_ms_mean"] == pytest.approx(1e3 * (0.16 + 0.11) / 2)
    assert m["prefill_time_s"] == pytest.approx(0.1) and m["decode_time_s"] == pytest.approx(0.06)
    assert m["decode_throughput_tok_s"] == pytest.approx(4 / 0.06)  # decode tokens: 2 + 1 + 1
    assert m["step_ms_mean"] == pytest.approx(20.0)


def test_later_batches_queue_behind_earlier_ones():
    """Rate inf: every request arrives at t = 0, so the second batch's TTFT includes the first batch."""
    m = summarise([batch([0.1, 0.1], [2]), batch([0.1, 0.1], [2])])
    assert m["ttft_ms_mean"] == pytest.approx(1e3 * (0.1 + 0.3) / 2)
    assert m["e2e_ms_mean"] == pytest.approx(1e3 * (0.2 + 0.4) / 2)
    assert m["output_throughput_tok_s"] == pytest.approx(4 / 0.4)


def test_online_summary_and_repeats():
    records = [RequestRecord(0, 10, 3, [0.5, 0.6, 0.7]), RequestRecord(1, 10, 1, [0.9])]
    m = summarise_online(records, duration_s=1.0)
    assert m["output_throughput_tok_s"] == 4.0 and m["ttft_ms_mean"] == pytest.approx(700.0)
    assert m["tpot_ms_mean"] == pytest.approx(100.0)  # only requests with more than one token
    rows = [{"output_throughput_tok_s": v, "device": "cpu", "energy_j": None} for v in (10.0, 30.0, 20.0)]
    med = median_over_repeats(rows)
    assert med["output_throughput_tok_s"] == 20.0 and med["repeats"] == 3 and med["device"] == "cpu"
    assert med["output_throughput_cv"] == pytest.approx(np.std([10, 30, 20]) / 20)
    assert med["energy_j"] is None
