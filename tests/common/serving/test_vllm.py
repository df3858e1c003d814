"""vLLM paths: skipped cleanly without vLLM; the server lifecycle, /metrics sampler, Prometheus parsing and
streaming client checked against a fake OpenAI-compatible server on loopback."""

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from common.serving.engine import make_engine
from common.serving.metrics import summarise_online
from common.serving.vllm_server import (
    KV_USAGE,
    PREEMPTIONS,
    RUNNING,
    MetricsSampler,
    Server,
    ServerError,
    metric_value,
    parse_prometheus,
    run_online,
    vllm_server_command,
)

FAKE = str(Path(__file__).with_name("fake_vllm_server.py"))
HAVE_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM is installed here: the GPU contract test covers it")
def test_vllm_engine_without_vllm_says_where_it_lives():
    from common.serving.vllm_engine import VLLMUnavailable

    with pytest.raises(VLLMUnavailable, match=r"\.venv-vllm"):
        make_engine("vllm", "opt-tiny")


def test_prometheus_parsing_v0_and_v1_names():
    v0 = (
        '# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="opt"} 0.25\n'
        'vllm:num_preemptions_total{model_name="opt"} 7.0\n'
    )
    v1 = (
        'vllm:kv_cache_usage_perc{engine="0",model_name="a \\"q\\" b"} 0.5\n'
        'vllm:num_requests_running{engine="0"} 3\nvllm:num_requests_running{engine="1"} 2 1700000000000\n'
        'vllm:e2e_request_latency_seconds_bucket{le="+Inf"} 4\n'
    )
    s0, s1 = parse_prometheus(v0), parse_prometheus(v1)
    assert metric_value(s0, KV_USAGE) == 0.25 and metric_value(s0, PREEMPTIONS) == 7.0
    assert metric_value(s1, KV_USAGE) == 0.5 and metric_value(s1, RUNNING) == 5.0  # summed over engines
    assert s1[0][1]["model_name"] == 'a "q" b'
    assert s1[-1][1] == {"le": "+Inf"} and metric_value(s1, PREEMPTIONS) is None
    with pytest.raises(ValueError, match="line 1"):
        parse_prometheus("not a sample line at all")


def test_server_lifecycle_sampler_and_streaming_client(tmp_path):
    server = Server([sys.executable, FAKE, "{port}"], tmp_path / "server.log", ready_timeout_s=20)
    with server:
        assert server.proc.poll() is None
        sampler = MetricsSampler(server.host, server.port, hz=20).start()
        records, duration = run_online(server.host, server.port, "fake", [([5, 6, 7], 8), ([1, 2], 4)])
        time.sleep(0.15)
        rows = sampler.stop()
    assert server.proc.poll() is not None  # stopped with the context
    assert [r.output_len for r in records] == [8, 4] and [len(r.token_times_s) for r in records] == [8, 4]
    assert all(0 < r.ttft_s <= r.e2e_s <= duration for r in records)
    summary = summarise_online(records, duration)
    assert summary["output_tokens"] == 12 and summary["itl_ms_mean"] > 0
    assert len(rows) >= 3 and max(r.running for r in rows) >= 1
    stats = sampler.summary()
    assert stats["num_preemptions"] == 1.0 and stats["max_kv_cache_usage_pct"] > 0


def test_server_that_dies_is_reported_with_its_log(tmp_path):
    server = Server(
        [sys.executable, FAKE, "{port}", "--die-after-s", "0.2"], tmp_path / "s.log", ready_timeout_s=20
    )
    with pytest.raises(ServerError, match="simulated crash"):
        server.start()


def test_server_not_ready_in_time_is_stopped(tmp_path):
    server = Server(
        [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log", ready_timeout_s=1
    )
    with pytest.raises(ServerError, match="not ready"):
        server.start()
    assert server.proc.poll() is not None


def test_vllm_command_line():
    cmd = vllm_server_command("/m", "127.0.0.1", 8123, ["--max-num-seqs", "64"])
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"] and "--max-num-seqs" in cmd


def test_random_weight_models_get_a_config_dir_vllm_can_load(tmp_path):
    import json

    from common.serving.vllm_engine import model_dir_for

    config = json.loads((Path(model_dir_for("llama-2-7b", tmp_path)) / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 32
    assert model_dir_for("facebook/opt-1.3b", tmp_path) == "facebook/opt-1.3b"  # a checkpoint: as is
