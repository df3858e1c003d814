"""Replication: the stream split and the aggregation against hand-computed values, then two opt-tiny
replicas end to end on this machine's cores against one replica, from the real config."""

import json
import os

import pytest
import torch

from common.results import ResultStore
from papers.batching import replicate
from tests.papers.batching.helpers import run_entry


class Cfg:  # the keys settings_from reads
    baseline_batch, memory_fraction, replicas, replica_batches = 8, 0.9, [2, 4], [2, 8]


def test_settings_put_the_baseline_first_and_split_the_memory():
    settings = replicate.settings_from(Cfg)
    assert settings[0] == replicate.Setting(1, 8, 0.9)
    assert [s.name for s in settings] == ["1x8", "2x2", "2x8", "4x2", "4x8"]
    assert all(s.share == pytest.approx(0.9 / s.replicas) for s in settings)


def test_stream_is_split_round_robin_without_loss():
    stream = list(range(10))
    parts = replicate.split_stream(stream, 3)
    assert [[g for g, _ in p] for p in parts] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(g for p in parts for g, _ in p) == stream


def test_aggregate_against_hand_computed_values():
    """Replica 0 starts at t = 10 s and serves two 3-token requests, replica 1 starts 0.2 s later with one;
    every time below is worked out by hand on the common clock (zero: the first start)."""
    reps = {
        0: {
            "start": 10.0,
            "end": 12.0,
            "batches": [
                {
                    "t": 10.0,
                    "peak": 100,
                    "kv": 7,
                    "requests": [(0, 4, 3, [0.5, 1.0, 1.5]), (2, 4, 3, [0.5, 1.0, 1.5])],
                }
            ],
        },
        1: {
            "start": 10.2,
            "end": 11.7,
            "batches": [{"t": 10.2, "peak": 300, "kv": 5, "requests": [(1, 4, 3, [0.2, 0.6, 1.0])]}],
        },
    }
    m = replicate.aggregate(reps)
    assert m["wall_time_s"] == pytest.approx(2.0)
    assert m["output_throughput_tok_s"] == pytest.approx(9 / 2.0)
    assert m["total_throughput_tok_s"] == pytest.approx((9 + 12) / 2.0)
    assert m["ttft_ms_mean"] == pytest.approx(1e3 * (0.5 + 0.5 + 0.4) / 3)
    assert m["e2e_ms_mean"] == pytest.approx(1e3 * (1.5 + 1.5 + 1.2) / 3)
    assert m["itl_ms_mean"] == pytest.approx(1e3 * (4 * 0.5 + 2 * 0.4) / 6)
    assert m["start_skew_ms"] == pytest.approx(200.0)
    assert m["replica_throughput_min_tok_s"] == pytest.approx(3 / 1.5)
    assert m["replica_throughput_max_tok_s"] == pytest.approx(6 / 2.0)
    assert m["peak_memory_bytes_max"] == 300 and m["kv_cache_bytes_total"] == 12


def test_compare_divides_by_the_baseline():
    rows = [
        {
            "setting": "1x8",
            "replicas": 1,
            "batch_cap": 8,
            "output_throughput_tok_s": 100.0,
            "itl_ms_mean": 10.0,
            "per_repeat": {"output_throughput_tok_s": [100.0, 80.0, 120.0]},
        },
        {
            "setting": "2x4",
            "replicas": 2,
            "batch_cap": 4,
            "output_throughput_tok_s": 150.0,
            "itl_ms_mean": 5.0,
            "per_repeat": {"output_throughput_tok_s": [150.0, 160.0, 60.0]},
        },
    ]
    [c] = replicate.compare(rows, replicate.Setting(1, 8, 0.9))
    assert c["output_throughput_tok_s_ratio"] == 1.5 and c["itl_ms_mean_ratio"] == 0.5
    assert c["e2e_ms_mean_ratio"] is None  # not measured: no ratio invented
    # round by round (the rounds interleave settings on a CPU, so each pair ran under similar load)
    assert c["throughput_ratio_per_repeat"] == [1.5, 2.0, 0.5] and c["throughput_ratio_range"] == [0.5, 2.0]


@pytest.mark.slow  # three spawned processes load torch: ~30 s on the 2 shared cores
def test_two_replicas_end_to_end_against_one(tiny_replication):
    results, summary = tiny_replication
    out = results / "batching" / "replicate" / "smoke"
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    assert summary["settings"] == ["1x8", "2x2"] and summary["failed"] == 0
    assert summary["hardware"].startswith("CPU")
    rows = {r["setting"]: r for r in summary["rows"]}
    cores = len(os.sched_getaffinity(0))
    assert rows["1x8"]["cores_per_replica"] == cores and rows["2x2"]["cores_per_replica"] == cores // 2
    assert rows["2x2"]["device_name"].startswith("CPU")
    frame = ResultStore(out / "results.jsonl").load()
    for r in frame.itertuples():
        assert r.n_requests == 8 and r.output_tokens == 8 * 3  # the whole stream, every token
        assert r.output_throughput_tok_s == pytest.approx(r.output_tokens / r.wall_time_s)
        assert r.e2e_ms_mean >= r.ttft_ms_mean and r.start_skew_ms >= 0
    # 1x8 serves the stream as one batch: every request gets its first token at the same step. 2x2: each
    # replica serves its 4 requests as two batches, so the second batch's first tokens come after the
    # first batch has finished, and the top TTFTs (queueing) lie above the median.
    one, two = (frame[frame["replicas"] == n].iloc[0] for n in (1, 2))
    assert one["ttft_ms_p99"] == pytest.approx(one["ttft_ms_median"])
    assert two["ttft_ms_p99"] > two["ttft_ms_median"]
    [c] = summary["comparison"]
    assert c["setting"] == "2x2" and c["output_throughput_tok_s_ratio"] > 0


@pytest.mark.slow
def test_rerun_does_not_serve_finished_settings_again(tiny_replication):
    from tests.papers.batching.helpers import TINY_REPLICATION

    results, _ = tiny_replication
    store = ResultStore(results / "batching" / "replicate" / "smoke" / "results.jsonl")
    before = store.rows()
    run_entry(replicate, "batching/replicate", results, *TINY_REPLICATION)
    assert store.rows() == before


@pytest.mark.slow  # spawns the replicas before they time out
def test_a_hung_setting_is_recorded_as_failed_and_the_rest_goes_on(tmp_path):
    from tests.papers.batching.helpers import TINY_REPLICATION

    with pytest.raises(SystemExit) as exc:  # every cell failed: the run says so with exit status 1
        run_entry(replicate, "batching/replicate", tmp_path, *TINY_REPLICATION, "timeout_s=0.5")
    assert exc.value.code == 1
    out = tmp_path / "batching" / "replicate" / "smoke"
    rows = ResultStore(out / "results.jsonl").rows()
    assert len(rows) == 2 and all(r["status"] == "failed" for r in rows)  # loading torch takes longer
    assert all("timeout_s" in r["error"] or "Barrier" in r["error"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 2 and summary["comparison"] == []


@pytest.mark.parametrize(
    "override, key",
    [
        ("engine=vllm", "engine"),
        ("replicas=[64]", "replicas"),
        ("memory_fraction=1.5", "memory_fraction"),
        ("model=gpt-17", "model"),
        ("warmup_tokens=0", "warmup_tokens"),
        pytest.param(
            "device=cuda",
            "device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here"),
        ),
    ],
)
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, override, key):
    with pytest.raises(SystemExit) as exc:
        run_entry(replicate, "batching/replicate", tmp_path, override)
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {key}")  # checked before anything runs
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing written


def test_vllm_route_end_to_end_against_a_fake_openai_server(tmp_path, monkeypatch):
    """The GPU route without a GPU: N servers started one after the other and stopped, the stream split
    between them, every token timed, the /metrics gauges read. Only vLLM's server is swapped, for the
    serving core's stand-in on loopback (the arguments vLLM would get are checked as built)."""
    import sys
    from types import SimpleNamespace

    from common.repo import REPO_ROOT
    from common.serving import vllm_server
    from common.serving.workloads import WorkloadSpec, build_requests

    fake = REPO_ROOT / "tests" / "common" / "serving" / "fake_vllm_server.py"
    commands = []

    def command(model, host, port, args):
        commands.append(list(args))
        return [sys.executable, str(fake), str(port)]

    monkeypatch.setattr(vllm_server, "vllm_server_command", command)
    cfg = SimpleNamespace(
        model="opt-tiny",
        dtype="fp16",
        seed=0,
        vllm_args=["--enforce-eager"],
        timeout_s=60,
        warmup=1,
        warmup_tokens=2,
        repeats=2,
        mps=False,
    )
    stream = build_requests(WorkloadSpec("fixed", 4, 3), 6, 8192)
    rows, described = replicate.serve_vllm(replicate.Setting(2, 4, 0.45), stream, cfg, tmp_path, "fake GPU")
    assert len(commands) == 2  # one server per replica
    args = commands[0]
    assert args[args.index("--max-num-seqs") + 1] == "4"
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.4500"
    assert "--load-format" in args and args[-1] == "--enforce-eager"
    assert len(rows) == 2 and described["device_name"] == "fake GPU"
    for r in rows:
        assert r["n_requests"] == 6 and r["output_tokens"] == 6 * 3
        assert r["output_throughput_tok_s"] == pytest.approx(r["output_tokens"] / r["wall_time_s"])
        assert r["itl_ms_mean"] > 5  # the fake streams a token every 10 ms
        assert r["mean_running_batch_per_replica"] is not None  # each server's /metrics was sampled
    assert sorted(p.name for p in tmp_path.glob("server_*.log")) == ["server_2x4_0.log", "server_2x4_1.log"]
