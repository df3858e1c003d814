"""Serving statistics from engine records, defined once for every engine, paper and figure.

Definitions follow vLLM's benchmark_serving.py, which the papers' numbers come from: all requests
arrive at t = 0 (request rate inf), so a request in the k-th static batch waits for the k-1 batches
before it and its TTFT includes that queueing; TPOT is per request (latency - TTFT) / (tokens - 1);
ITL pools every gap between consecutive tokens of every request.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from common.serving.engine import BatchResult, RequestRecord


def _stats(name: str, values_s: list[float]) -> dict:
    """mean, median and p99 in milliseconds (None when there is nothing to summarise)."""
    if not values_s:
        return {f"{name}_ms_mean": None, f"{name}_ms_median": None, f"{name}_ms_p99": None}
    v = np.asarray(values_s, dtype=np.float64) * 1e3
    return {
        f"{name}_ms_mean": float(v.mean()),
        f"{name}_ms_median": float(np.median(v)),
        f"{name}_ms_p99": float(np.percentile(v, 99)),
    }


def latency_stats(timed: Iterable[tuple[RequestRecord, float]]) -> dict:
    """TTFT, TPOT, ITL and end-to-end statistics of requests, each with the offset of its batch's start
    from t = 0."""
    ttft, tpot, itl, e2e = [], [], [], []
    for r, offset in timed:
        times = np.asarray(r.token_times_s, dtype=np.float64) + offset
        ttft.append(float(times[0]))
        e2e.append(float(times[-1]))
        if len(times) > 1:
            tpot.append(float(times[-1] - times[0]) / (len(times) - 1))
            itl.extend(np.diff(times).tolist())
    return {**_stats("ttft", ttft), **_stats("tpot", tpot), **_stats("itl", itl), **_stats("e2e", e2e)}


def summarise(batches: list[BatchResult]) -> dict:
    """One repeat of one cell: its static batches, run back to back."""
    if not batches:
        raise ValueError("summarise needs at least one batch")
    offsets = np.cumsum([0.0] + [b.total_time_s for b in batches[:-1]])
    wall = sum(b.total_time_s for b in batches)
    prefill = sum(b.prefill_time_s for b in batches)
    decode = sum(b.decode_time_s for b in batches)
    out_tokens = sum(b.output_tokens for b in batches)
    in_tokens = sum(b.input_tokens for b in batches)
    decode_tokens = sum(s.tokens for b in batches for s in b.steps if s.kind != "prefill")
    decode_steps = [s.time_s for b in batches for s in b.steps if s.kind != "prefill"]
    n_requests = sum(len(b.requests) for b in batches)
    peaks = [b.peak_memory_bytes for b in batches if b.peak_memory_bytes is not None]
    return {
        "n_requests": n_requests,
        "n_batches": len(batches),
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "wall_time_s": wall,
        "output_throughput_tok_s": out_tokens / wall,
        "total_throughput_tok_s": (in_tokens + out_tokens) / wall,
        "request_throughput_rps": n_requests / wall,
        "decode_throughput_tok_s": decode_tokens / decode if decode > 0 else None,
        "prefill_time_s": prefill,
        "decode_time_s": decode,
        "prefill_fraction": prefill / (prefill + decode),
        **_stats("step", decode_steps),
        **latency_stats((r, off) for b, off in zip(batches, offsets) for r in b.requests),
        "peak_memory_bytes": max(peaks) if peaks else None,
        "kv_cache_bytes": max(b.kv_cache_bytes for b in batches),
    }


def summarise_online(records: list[RequestRecord], duration_s: float) -> dict:
    """An online run (all requests sent at t = 0 to a server): throughput over the benchmark's duration."""
    in_tokens = sum(r.prompt_len for r in records)
    out_tokens = sum(r.output_len for r in records)
    return {
        "n_requests": len(records),
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "wall_time_s": duration_s,
        "output_throughput_tok_s": out_tokens / duration_s,
        "total_throughput_tok_s": (in_tokens + out_tokens) / duration_s,
        "request_throughput_rps": len(records) / duration_s,
        **latency_stats((r, 0.0) for r in records),
    }


def median_over_repeats(rows: list[dict]) -> dict:
    """Each numeric column's median over repeats (robust to one disturbed repeat); the spread of the
    output throughput is kept as its coefficient of variation."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = float(np.median(values))
        else:
            out[key] = values[0]
    tput = np.array([r["output_throughput_tok_s"] for r in rows])
    out["output_throughput_cv"] = float(tput.std() / tput.mean()) if len(rows) > 1 else None
    out["repeats"] = len(rows)
    return out
