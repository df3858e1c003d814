"""Detector building blocks against independent computations."""

import numpy as np
import torch
import torch.nn.functional as F

from papers.frida import free_riders as fr
from papers.frida.baselines import DAGMMNet, gmm_energy
from papers.frida.detectors.base import robust_z
from papers.frida.detectors.membership import per_sample_gradients
from papers.frida.metrics import flag_metrics, roc_auc
from papers.frida.models import build_model, flatten, unflatten


def test_vmapped_per_sample_gradients_match_autograd_one_sample_at_a_time():
    model = build_model("mlp", (1, 8, 8), 10, 16, seed=1)
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 5)
    fast = per_sample_gradients(model, x, y)
    for i in range(5):
        model.zero_grad()
        F.cross_entropy(model(torch.as_tensor(x[i:i + 1])), torch.as_tensor(y[i:i + 1])).backward()
        slow = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy()
        np.testing.assert_allclose(fast[i], slow, atol=1e-6)


def test_robust_z_ignores_a_minority_of_outliers():
    z = robust_z([1.0, 1.1, 0.9, 1.05, 0.95, 50.0])
    assert abs(z[:5]).max() < 2 and z[5] > 100


def test_roc_auc_and_flag_metrics_on_a_hand_case():
    labels = [True, False, False, True]
    assert roc_auc(labels, [0.9, 0.1, 0.4, 0.3]) == 0.75  # 3 of 4 (pos, neg) pairs ordered right
    m = flag_metrics(labels, [True, True, False, False])
    assert (m["precision"], m["recall"], m["fpr"], m["fnr"], m["accuracy"]) == (0.5, 0.5, 0.5, 0.5, 0.5)
    assert np.isnan(roc_auc([False, False], [0.1, 0.2]))


def test_dagmm_energy_is_low_where_the_mixture_puts_its_mass():
    torch.manual_seed(0)
    net = DAGMMNet(dim=6, extra=0)
    x = torch.randn(50, 6)
    _, z, gamma = net(x, torch.zeros(50, 0))
    energy, penalty = gmm_energy(z, gamma)
    assert torch.isfinite(energy).all() and penalty > 0
    far = z.mean(0) + 50 * z.std(0)
    e_far, _ = gmm_energy(torch.cat([z, far[None]]), torch.cat([gamma, gamma[:1]]))
    assert e_far[-1] > energy.max()


def _weights(seed):
    return unflatten(np.random.default_rng(seed).normal(size=40), {"a": np.zeros((4, 5)), "b": np.zeros(20)})


def test_disguised_noise_has_the_fraboni_standard_deviation():
    prev, glob = _weights(0), _weights(1)
    sigma = np.mean(np.abs(flatten(glob) - flatten(prev)))
    big = {"a": np.zeros(20000)}
    big_prev = {"a": np.full(20000, -sigma)}
    fake = fr.disguised(big, big_prev, server_round=4, m=2.0, gamma=0.5, rng=np.random.default_rng(0))
    assert np.isclose(np.std(fake["a"]), 2.0 * sigma * 4 ** -0.5, rtol=0.03)


def test_gradient_noiser_replays_the_last_step_with_matching_noise():
    step = np.random.default_rng(2).normal(0, 0.1, 20000)
    prev, glob = {"a": np.zeros(20000)}, {"a": step}
    fake = fr.gradient_noiser(glob, prev, np.random.default_rng(0))["a"] - glob["a"]
    residual = fake - step
    assert np.isclose(residual.std(), step.std(), rtol=0.03) and abs(residual.mean()) < 0.005


def test_adaptive_free_rider_matches_the_target_norm_and_cosine():
    prev, glob = _weights(3), _weights(4)
    fake = fr.adaptive(glob, prev, ref_norm=2.0, ref_cos=0.3, ref_step_norm=4.0, rng=np.random.default_rng(0))
    step = flatten(glob) - flatten(prev)
    update = flatten(fake) - flatten(glob)
    assert np.isclose(np.linalg.norm(update), 2.0 * np.linalg.norm(step) / 4.0)
    assert np.isclose(fr.cosine(update, step), 0.3)


def test_gradient_alignment_sees_training_on_members_and_nothing_in_a_zero_update():
    from papers.frida.detectors.base import ClientUpdate, RoundView
    from papers.frida.detectors.membership import MiaGrad
    from papers.frida.models import get_weights

    from .conftest import tiny_fed

    fed = tiny_fed()
    model = build_model("mlp", (1, 8, 8), 10, 16, seed=0)
    glob = get_weights(model)
    rng = np.random.default_rng(1)
    x = rng.random((30, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 30)
    members = slice(0, 8)
    step = -0.1 * per_sample_gradients(model, x[members], y[members]).sum(0)
    trained = unflatten(flatten(glob) + step, glob)
    view = RoundView(2, fed, glob, [ClientUpdate(0, trained, 8), ClientUpdate(1, glob, 8)], x[members],
                     y[members], x[8:], y[8:], 10, model)
    out = MiaGrad()(view)
    assert out.extras["p"][0] < fed.mia_alpha and not out.flags[0]
    assert out.flags[1] and out.scores[1] > out.scores[0]


def test_every_model_ends_in_a_linear_head_with_a_bias():
    for name, shape in [("mlp", (1, 8, 8)), ("lenet5", (1, 28, 28)), ("cifar_cnn", (3, 32, 32))]:
        model = build_model(name, shape, 10, 32)
        assert isinstance(model.head, torch.nn.Linear) and model.head.bias is not None
        assert model(torch.zeros(2, *shape)).shape == (2, 10)
