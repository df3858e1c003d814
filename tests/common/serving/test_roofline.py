"""The analytical model: arithmetic against hand-computed values, the KV formula against vLLM's own
accounting in the paper's logs (the fitted step model on top of it: test_step_model.py)."""

from types import SimpleNamespace

import pandas as pd
import pytest

from common.repo import REPO_ROOT
from common.serving import roofline as rl
from common.serving.bench.regime_check import check, dense_crossover_batch

REFERENCE = REPO_ROOT / "papers" / "batching" / "reference"
GiB = 2**30


def test_kv_bytes_per_token_of_opt_1_3b_in_fp16():
    assert rl.kv_bytes_per_token(rl.model_shape("opt-1.3b"), "fp16") == 196_608  # 2 * 24 * 32 * 64 * 2


def test_kv_bytes_per_token_reproduce_vllm_pool_sizes_in_the_paper_logs():
    """vLLM fits whole blocks of 16 tokens into its KV pool: num_gpu_blocks x 16 x KV bytes per token is
    the logged pool size (printed to 0.01 GiB) less under one block, for all four models."""
    memory = pd.read_csv(REFERENCE / "server_memory.csv")
    for row in memory.itertuples():
        block = row.block_size * rl.kv_bytes_per_token(rl.model_shape(row.model), "fp16") / GiB
        blocks = row.num_gpu_blocks * block
        assert blocks - 0.005 <= row.kv_cache_gib <= blocks + block + 0.005, row.model


def test_opt_tiny_parameter_classes_by_hand():
    d, layers, ffn, vocab, max_pos = 96, 2, 384, 8192, 512
    shape = rl.model_shape("opt-tiny")
    per_layer = 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d)  # q, k, v, out; fc1; fc2 (with biases)
    assert shape.dense_params == layers * per_layer + vocab * d  # + the tied LM head, no bias
    assert shape.dense_io == layers * (4 * 2 * d + 2 * (d + ffn)) + (d + vocab)
    assert shape.other_params == (2 * layers + 1) * 2 * d  # layer norms: weight and bias
    assert shape.n_params == shape.dense_params + shape.other_params + (max_pos + 2) * d  # + positions
    assert (shape.n_heads, shape.n_kv_heads, shape.head_dim) == (4, 4, 24)


def test_step_costs_by_hand():
    shape = rl.model_shape("opt-tiny")
    spec = SimpleNamespace(peak_flops={"fp16": 1e12}, mem_bandwidth=1e9)
    batch, context = 8, 100
    costs = rl.step_costs(shape, batch, context, spec, "fp16")
    dense_flops = 2 * shape.dense_params * batch
    dense_bytes = 2 * (shape.dense_params + shape.other_params) + 2 * batch * shape.dense_io
    attn_flops = 4 * batch * context * 96 * 2
    attn_bytes = batch * context * (2 * 2 * 4 * 24 * 2) + 2 * batch * 96 * 2 * 2
    assert costs["dense"].flops == dense_flops and costs["dense"].bytes == dense_bytes
    assert costs["attention"].flops == attn_flops and costs["attention"].bytes == attn_bytes
    expected = max(dense_flops / 1e12, dense_bytes / 1e9) + max(attn_flops / 1e12, attn_bytes / 1e9)
    assert rl.step_time(shape, batch, context, spec, "fp16") == pytest.approx(expected)
    assert rl.throughput(shape, batch, context, spec, "fp16") == pytest.approx(batch / expected)


@pytest.mark.parametrize("name,ratio", [("opt-1.3b", 1.0), ("llama-2-13b", 1.0), ("llama-tiny", 2.0)])
def test_decode_attention_intensity_stays_near_heads_over_kv_heads(name, ratio):
    shape = rl.model_shape(name)
    spec = SimpleNamespace(peak_flops={"fp16": 989e12}, mem_bandwidth=3.35e12)
    for batch in (1, 64, 512):
        attention = rl.step_costs(shape, batch, 330, spec, "fp16")["attention"]
        assert attention.intensity == pytest.approx(ratio, rel=0.01)
        assert attention.bound == "memory"
    dense = [rl.step_costs(shape, b, 330, spec, "fp16")["dense"] for b in (1, 64, 512)]
    assert dense[2].intensity > dense[1].intensity > 20 * dense[0].intensity  # grows with the batch
    assert dense[0].bound == "memory"


def test_regime_check_agrees_with_itself_on_roofline_shaped_data():
    """Plumbing check: a sweep whose step times are the roofline's own agrees everywhere."""
    shape = rl.model_shape("opt-tiny")
    spec = SimpleNamespace(peak_flops={"fp32": 2e11}, mem_bandwidth=2e10)
    batches = [1, 8, 32, 128, 512]
    context = 8 + 8 / 2
    frame = pd.DataFrame(
        {
            "model": "opt-tiny",
            "workload": "fixed-8-8",
            "dtype": "fp32",
            "device_name": "cpu",
            "batch_size": batches,
            "workload_prompt_mean": 8.0,
            "n_requests": batches,
            "output_tokens": [8 * b for b in batches],
            "step_ms_median": [1e3 * rl.step_time(shape, b, context, spec, "fp32") for b in batches],
        }
    )
    [result] = check(frame, spec, "fake")
    assert result["agreement"] == 1.0
    assert [i["measured"] for i in result["intervals"]][0] == "memory"
    assert [i["measured"] for i in result["intervals"]][-1] == "compute"
    crossover = dense_crossover_batch(shape, spec, "fp32")
    dense = rl.step_costs(shape, crossover, 1.0, spec, "fp32")["dense"]
    assert dense.intensity == pytest.approx(spec.peak_flops["fp32"] / spec.mem_bandwidth, rel=1e-3)


def test_regime_check_without_a_sweep_exits_2(tmp_path, caplog):
    from common.config import compose, register_schema, run_task
    from common.serving.bench import regime_check

    register_schema("common/serving/bench/regime_check", regime_check.RegimeCheckConfig)
    cfg = compose(
        "common/serving/bench/regime_check",
        [
            "logger=none",
            f"paths.results_dir={tmp_path}",
            f"results={tmp_path / 'missing.jsonl'}",
            f"out={tmp_path / 'o.json'}",
        ],
    )
    with pytest.raises(SystemExit) as exc:
        run_task(regime_check.main.task, cfg, tmp_path / "run")
    assert exc.value.code == 2
    assert "bad input: results:" in caplog.text and "missing.jsonl" in caplog.text
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "run").exists()
