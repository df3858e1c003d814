"""The engine contract, checked on every engine available here (vLLM only where it is installed).

Oracles: transformers' own `model.generate` (greedy) for the tokens, the clock sum for the step times,
the KV formula for the cache size.
"""

import importlib.util

import pytest
import torch
from transformers import GenerationConfig

from common.serving.engine import DECODE_START, DRAIN_START, RUN_END, make_engine
from common.serving.hf_engine import HFEngine
from common.serving.roofline import kv_bytes_per_token, model_shape

HAVE_VLLM = importlib.util.find_spec("vllm") is not None
HAVE_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module", params=["hf", "vllm"])
def engine(request, tiny_engine):
    if request.param == "hf":
        yield tiny_engine
        return
    if not HAVE_VLLM:
        pytest.skip("vLLM is not installed in this environment (it lives in .venv-vllm on GPU nodes)")
    if not HAVE_CUDA:
        pytest.skip("the vLLM engine needs a CUDA GPU")
    eng = make_engine(
        "vllm",
        "opt-tiny",
        dtype="fp16",
        max_num_seqs=8,
        gpu_memory_utilization=0.3,
        enforce_eager=True,
        max_model_len=512,
    )
    yield eng
    eng.close()


def prompts(batch, length, seed=0, vocab=8192):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, vocab, (batch, length), generator=g).tolist()


def test_contract_tokens_steps_and_requests(engine):
    result = engine.run(prompts(3, 6), 5)
    assert [r.output_len for r in result.requests] == [5, 5, 5]
    assert [r.prompt_len for r in result.requests] == [6, 6, 6]
    assert result.output_tokens == 15 and result.input_tokens == 18
    assert sum(s.tokens for s in result.steps) == 15
    assert result.steps[0].kind == "prefill" and all(s.kind == "decode" for s in result.steps[1:])
    for r in result.requests:
        times = r.token_times_s
        assert len(times) == 5 and all(b >= a for a, b in zip(times, times[1:]))
        assert 0 < r.ttft_s <= r.e2e_s <= result.total_time_s
    assert result.kv_cache_bytes > 0
    assert result.peak_memory_bytes is None or result.peak_memory_bytes > 0
    described = engine.describe()
    assert {"engine", "model", "device", "device_name", "precision", "n_params", "vocab_size"} <= set(
        described
    )


def test_contract_step_times_sum_to_the_total(engine):
    result = engine.run(prompts(2, 8, seed=1), 12)
    step_sum = sum(s.time_s for s in result.steps)
    assert step_sum <= result.total_time_s * 1.001
    assert step_sum == pytest.approx(result.total_time_s, rel=0.05)
    assert result.prefill_time_s + result.decode_time_s == pytest.approx(step_sum)
    # every request's last token arrives at the end of the last step it took part in
    assert result.requests[0].e2e_s == pytest.approx(step_sum)


def test_contract_per_request_lengths_and_phases(engine):
    phases = []
    result = engine.run(prompts(3, 5, seed=2), [2, 6, 4], hook=phases.append)
    assert [r.output_len for r in result.requests] == [2, 6, 4]
    assert phases == [DECODE_START, DRAIN_START, RUN_END]
    assert [s.batch for s in result.steps[:3]] == [3, 3, 2]  # request 0 is done after two tokens


def test_hf_tokens_equal_generate_greedy(tiny_engine):
    """Same work as transformers' generate: identical greedy tokens, with and without left padding."""
    model = tiny_engine.lm.model
    for lengths in ([7, 7, 7], [5, 9, 7]):
        batch = [p[:n] for p, n in zip(prompts(3, 9, seed=3), lengths)]
        result = tiny_engine.run(batch, 10)
        width = max(lengths)
        ids = torch.full((3, width), tiny_engine.pad_id)
        mask = torch.zeros((3, width), dtype=torch.long)
        for i, p in enumerate(batch):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        config = GenerationConfig(
            max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=tiny_engine.pad_id
        )
        expected = model.generate(ids, attention_mask=mask, generation_config=config)[:, width:].tolist()
        assert result.output_ids == expected
        assert result.extra["padded"] == (len(set(lengths)) > 1)


def test_hf_static_cache_and_gqa_llama_agree_with_dynamic():
    for name in ("opt-tiny", "llama-tiny"):
        dynamic = HFEngine(name, device="cpu")
        static = HFEngine(dynamic.lm, cache="static")
        batch = prompts(2, 6, seed=4, vocab=4096)
        assert static.run(batch, 6).output_ids == dynamic.run(batch, 6).output_ids


def test_hf_kv_bytes_match_the_formula(tiny_engine):
    """A dynamic cache holds prompt + new - 1 tokens (the last token is never fed back)."""
    result = tiny_engine.run(prompts(4, 10, seed=5), 7)
    per_token = kv_bytes_per_token(model_shape("opt-tiny"), "fp32")
    assert result.kv_cache_bytes == 4 * (10 + 7 - 1) * per_token


def test_hf_untimed_run_marks_only_its_ends(tiny_engine):
    result = tiny_engine.run(prompts(1, 4), 3, per_step_timing=False)
    assert result.total_time_s > 0
    assert all(s.time_s != s.time_s for s in result.steps)  # NaN: no per-step clock


def test_bad_calls_are_refused(tiny_engine):
    with pytest.raises(ValueError, match="at least one prompt"):
        tiny_engine.run([], 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_engine.run(prompts(2, 3), [1, 2, 3])
    with pytest.raises(ValueError, match="compile_mode needs cache='static'"):
        HFEngine(tiny_engine.lm, compile_mode="default")
    with pytest.raises(ValueError, match="engine must be"):
        make_engine("tgi", "opt-tiny")


@pytest.mark.slow
def test_compiled_static_decode_matches_eager(tiny_engine):
    """torch.compile of the decode step (inductor; on a GPU "reduce-overhead" adds CUDA graphs)."""
    static = HFEngine(tiny_engine.lm, cache="static")
    compiled = HFEngine(tiny_engine.lm, cache="static", compile_mode="default")
    batch = prompts(2, 6, seed=6)
    expected = static.run(batch, 6).output_ids
    assert compiled.run(batch, 6).output_ids == expected
    assert compiled.run(batch, 6).output_ids == expected  # the compiled graph is reused
    with pytest.raises(ValueError, match="equal length"):
        compiled.run([batch[0][:4], batch[1]], 3)
