"""Model zoo: the papers' architectures have their published sizes; SmolLM2 loads offline from GGUF."""

import pytest
import torch

from common.serving.models import ARCHS, ModelUnavailable, get_config, load_model
from common.serving.roofline import model_shape

# published parameter counts, in billions (OPT paper Table 1 / model cards; Llama-2 model cards)
PUBLISHED_B = {
    "opt-125m": 0.125,
    "opt-350m": 0.35,
    "opt-1.3b": 1.3,
    "opt-2.7b": 2.7,
    "opt-6.7b": 6.7,
    "llama-2-7b": 6.7,
    "llama-2-13b": 13.0,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_B))
def test_architectures_have_their_published_sizes(name):
    assert model_shape(name).n_params / 1e9 == pytest.approx(PUBLISHED_B[name], rel=0.06)


def test_test_configs_are_small_and_build_on_the_target_dtype():
    assert 0.5e6 < model_shape("opt-tiny").n_params < 2e6
    assert 15e6 < model_shape("opt-16m").n_params < 18e6
    lm = load_model("llama-tiny", device="cpu", dtype="bf16")
    assert lm.dtype == torch.bfloat16 and lm.weights == "random" and lm.tokenizer is None
    assert lm.config.num_key_value_heads < lm.config.num_attention_heads  # GQA path covered
    assert not lm.model.training


def test_unknown_models_are_named_in_the_error():
    with pytest.raises(ModelUnavailable, match="no-such-org/no-such-model"):
        get_config("no-such-org/no-such-model")
    with pytest.raises(ValueError, match="dtype"):
        load_model("opt-tiny", dtype="fp64")
    assert set(ARCHS) >= set(PUBLISHED_B)


@pytest.mark.slow
def test_smollm2_loads_offline_from_the_gguf_wheel_and_talks():
    from common.serving.hf_engine import HFEngine

    lm = load_model("smollm2-135m", device="cpu", dtype="fp32")
    assert lm.weights == "gguf" and lm.n_params == pytest.approx(134.5e6, rel=0.01)
    engine = HFEngine(lm)
    ids = lm.tokenizer("The capital of France is").input_ids
    [out] = engine.run([ids], 3).output_ids
    assert "Paris" in lm.tokenizer.decode(out)  # real weights: dequantised Q4_1 still knows this


def test_a_local_checkpoint_loads_with_its_weights(tmp_path):
    random = load_model("opt-tiny", device="cpu")
    random.model.save_pretrained(tmp_path / "ckpt")
    loaded = load_model(str(tmp_path / "ckpt"), device="cpu")
    assert loaded.weights == "pretrained" and loaded.n_params == random.n_params
    for (name, a), b in zip(random.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
