"""The decode-step model: its terms by hand, the one fitting routine against synthetic truths, and the move
to another device (its fit to the authors' H100 data is the batching paper's `calibrate` benchmark:
tests/papers/batching/test_calibrate.py)."""

from types import SimpleNamespace

import pytest

from common.serving import roofline as rl
from common.serving.step_model import StepModel, StepObservation, decode_observations, errors, fit_step_model

H100 = SimpleNamespace(name="h100-test", peak_flops={"fp16": 989e12}, mem_bandwidth=1.63e12)
TRUTH = dict(t_fixed=2e-4, t_layer=9e-5, k_kv=1.25, t_token=1.2e-7, t_seq=1e-5, t_prefill_layer=5e-4)


def truth(device=H100, **kw) -> StepModel:
    return StepModel(
        device=device.name,
        bandwidth=device.mem_bandwidth,
        peak_flops=device.peak_flops["fp16"],
        dtype="fp16",
        **{**TRUTH, **kw},
    )


def test_the_terms_by_hand():
    shape = rl.model_shape("opt-1.3b")
    m = truth()
    b, ctx, r, p = 64, 330, 0.2, 110
    w = rl.weight_bytes(shape, "fp16")
    kv = b * ctx * rl.kv_bytes_per_token(shape, "fp16")
    terms = m.terms(shape, b, ctx, r, p)
    assert terms["fixed"] == pytest.approx(2e-4 + 24 * 9e-5)
    assert terms["weights_or_compute"] == pytest.approx(w / 1.63e12)  # memory-bound at B = 64
    assert terms["kv_read"] == pytest.approx(1.25 * kv / 1.63e12)
    assert terms["per_token"] == pytest.approx(1.2e-7 * b * ctx)
    assert terms["per_sequence"] == pytest.approx(64e-5)
    assert terms["prefill"] == pytest.approx(r * (24 * 5e-4 + w / 1.63e12))
    assert m.step_time(shape, b, ctx, r, p) == pytest.approx(sum(terms.values()))
    # past the ridge point the dense compute takes over from the weights' stream
    big = 4096
    compute = 2 * shape.dense_params * big / 989e12
    assert m.terms(shape, big, 1)["weights_or_compute"] == pytest.approx(compute)
    # chunked prefill: the prompts ride in the decode step (no prefill step of their own)
    chunked = m.terms(shape, b, ctx, r, p, chunked=True)
    assert chunked["prefill"] == 0 and chunked["weights_or_compute"] == pytest.approx(w / 1.63e12)
    assert m.terms(shape, 512, ctx, 4.0, 110, chunked=True)["weights_or_compute"] == pytest.approx(
        2 * shape.dense_params * (512 + 440) / 989e12
    )


def test_the_fit_recovers_a_known_engine_from_two_models_and_predicts_a_third():
    """Shared coefficients, fitted on two models' batches, lengths and prefill mixes, predict a third
    model exactly (the physical terms carry the model's shape)."""
    m = truth()
    train = []
    for name in ("opt-1.3b", "opt-2.7b"):
        shape = rl.model_shape(name)
        for b in (1, 4, 16, 64, 256):
            for ctx, r in ((330, 0.0), (250, 0.3), (600, 0.1)):
                o = StepObservation(shape, b, ctx, 1.0, prefills=r * b / 64, prefill_tokens=110, source="t")
                train.append(StepObservation(o.shape, b, ctx, m.predict(o), o.prefills, 110, "t"))
    fitted = fit_step_model(train, H100, "fp16")
    for k, v in TRUTH.items():
        assert getattr(fitted, k) == pytest.approx(v, rel=1e-6, abs=1e-12), k
    llama = rl.model_shape("llama-2-7b")
    expected = m.step_time(llama, 100, 400, 0.2, 120)
    assert fitted.step_time(llama, 100, 400, 0.2, 120) == pytest.approx(expected)
    assert set(fitted.fitted_on) == {"opt-1.3b/t", "opt-2.7b/t"}
    with pytest.raises(ValueError, match="at least two"):
        fit_step_model(train[:1], H100)


def test_without_a_device_sheet_the_weights_term_is_fitted():
    shape = rl.model_shape("opt-tiny")
    w = rl.weight_bytes(shape, "fp32")
    obs = [StepObservation(shape, b, 40, 1e-3 + 2e-12 * w + 3e-6 * b) for b in (1, 2, 4, 8, 16)]
    fitted = fit_step_model(obs, None, "fp32")
    assert fitted.bandwidth is None and fitted.k_w is not None
    (err,) = errors(fitted, obs).values()
    assert err["step_mape_pct"] < 1e-6
    with pytest.raises(ValueError, match="device sheet"):
        fitted.on_device(H100)


def test_on_another_device_the_bandwidth_terms_scale_and_the_cpu_seconds_stay():
    shape = rl.model_shape("llama-2-7b")
    m = truth()
    fast = SimpleNamespace(name="fast", peak_flops={"fp16": 2 * 989e12}, mem_bandwidth=2 * 1.63e12)
    moved = m.on_device(fast)
    here, there = m.terms(shape, 32, 300), moved.terms(shape, 32, 300)
    assert there["weights_or_compute"] == pytest.approx(here["weights_or_compute"] / 2)
    assert there["kv_read"] == pytest.approx(here["kv_read"] / 2)
    assert there["fixed"] == here["fixed"] and there["per_token"] == here["per_token"]


def test_half_ceiling_batch_of_a_linear_step_time():
    """t(B) = a + s B gives T(B) = B / (a + s B): ceiling 1/s, half of it at B = a / s."""
    shape = rl.model_shape("opt-1.3b")
    m = truth(t_seq=0.0, t_prefill_layer=0.0)
    context = 300
    a = 2e-4 + 24 * 9e-5 + rl.weight_bytes(shape, "fp16") / 1.63e12
    s = 1.25 * context * rl.kv_bytes_per_token(shape, "fp16") / 1.63e12 + 1.2e-7 * context
    ceiling, b_half = rl._half_ceiling_batch(lambda b: a + s * b)
    assert ceiling == pytest.approx(1 / s, rel=1e-6) and b_half == pytest.approx(a / s, rel=1e-6)
    # the model's own: past the ridge point its compute term adds time per sequence, so the ceiling and
    # B_h come lower than the memory-bound line's
    ceiling_m, b_half_m = m.half_ceiling_batch(shape, context)
    c = 2 * shape.dense_params / 989e12
    assert ceiling_m == pytest.approx(1 / (s + c), rel=1e-6) and b_half_m < a / s


def test_a_decode_phase_is_its_mean_step():
    shape = rl.model_shape("opt-1.3b")
    o = decode_observations(shape, 8, 161, 337, 3.37)
    assert o.context == 161 + 169 and o.time_s == pytest.approx(0.01)
    m = truth()
    steps = [m.step_time(shape, 8, 161 + s) for s in range(1, 338)]
    assert m.predict(o) == pytest.approx(sum(steps) / 337)  # linear in the context
    with pytest.raises(ValueError):
        decode_observations(shape, 8, 161, 0, 1.0)
