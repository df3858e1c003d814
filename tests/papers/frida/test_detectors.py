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
        F.cross_entropy(model(torch.as_tensor(x[i : i + 1])), torch.as_tensor(y[i : i + 1])).backward()
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
    assert np.isclose(np.std(fake["a"]), 2.0 * sigma * 4**-0.5, rtol=0.03)


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
    view = RoundView(
        2,
        fed,
        glob,
        [ClientUpdate(0, trained, 8), ClientUpdate(1, glob, 8)],
        x[members],
        y[members],
        x[8:],
        y[8:],
        10,
        model,
    )
    out = MiaGrad()(view)
    assert out.extras["p"][0] < fed.mia_alpha and not out.flags[0]
    assert out.flags[1] and out.scores[1] > out.scores[0]


def test_every_model_ends_in_a_linear_head_with_a_bias():
    for name, shape in [("mlp", (1, 8, 8)), ("lenet5", (1, 28, 28)), ("cifar_cnn", (3, 32, 32))]:
        model = build_model(name, shape, 10, 32)
        assert isinstance(model.head, torch.nn.Linear) and model.head.bias is not None
        assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_vectorised_welch_test_equals_scipy_one_column_at_a_time():
    from scipy import stats

    from papers.frida.detectors.membership import welch_greater

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.1, 1.0, (20, 6)), rng.normal(0.0, 2.0, (40, 6))
    t, p = welch_greater(a, b)
    for j in range(6):
        ref = stats.ttest_ind(a[:, j], b[:, j], equal_var=False, alternative="greater")
        assert np.isclose(t[j], ref.statistic) and np.isclose(p[j], ref.pvalue)


def test_ties_that_float_rounding_would_break_are_exact_ties():
    """Four clients, an even count: 0.3 and 0.5 are equally far from the median 0.4 in exact
    arithmetic but not in floats. Rounded z-scores tie, so the AUC is the same whichever of the two
    is the free-rider, and each pair counts one half."""
    values = [0.1, 0.3, 0.5, 0.7]
    raw = np.abs(np.asarray(values) - 0.4)
    assert raw[1] != raw[2]  # the float artefact the rounding removes
    z = np.abs(robust_z(values))
    assert z[1] == z[2]
    for positive in (1, 2):
        labels = [i == positive for i in range(4)]
        assert roc_auc(labels, z) == roc_auc(labels, list(reversed(z)))
        assert np.isclose(roc_auc(labels, z), 0.5 / 3)


def _view(updates, fed, round_=1):
    from papers.frida.detectors.base import ClientUpdate, RoundView

    model = build_model("mlp", (1, 8, 8), 10, 4, seed=0)
    from papers.frida.models import get_weights

    glob = get_weights(model)
    clients = [ClientUpdate(i, unflatten(flatten(glob) + u, glob), 10) for i, u in enumerate(updates)]
    empty = np.zeros((0, 1, 8, 8), np.float32)
    return RoundView(
        round_, fed, glob, clients, empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64), 10, model
    )


def test_baselines_score_their_designed_direction_and_the_metrics_report_the_flip():
    """A client that sends nothing has the smallest norm: l2 and std (designed: low = suspicious) rank
    it first; cosine and FoolsGold (designed: high) rank the two identical updates first. Flipping a
    score turns its AUC a into 1 - a."""
    from papers.frida.baselines import DIRECTIONS, CosineToRandom, FoolsGold, L2Norm, UpdateStd

    from .conftest import tiny_fed

    fed = tiny_fed()
    rng = np.random.default_rng(3)
    size = 8 * 8 * 4 + 4 + 4 * 10 + 10  # the 4-unit MLP's parameters
    honest = [rng.normal(0, 1, size) for _ in range(5)]
    same = rng.normal(0, 1, size)
    view = _view([np.zeros(size), *honest, same, same], fed)
    l2, std = L2Norm()(view), UpdateStd()(view)
    assert np.argmax(l2.scores) == 0 and np.argmax(std.scores) == 0
    assert DIRECTIONS["l2"] == DIRECTIONS["std"] == "low" and l2.extras["stat"][0] == 0.0
    fg = FoolsGold()(view)
    assert set(np.argsort(fg.scores)[-2:]) == {6, 7} and np.isclose(fg.extras["stat"][6], 1.0)
    assert CosineToRandom(0)(view).scores.shape == (8,)
    labels = [True] + [False] * 7
    assert roc_auc(labels, l2.scores) == 1.0 and roc_auc(labels, -l2.scores) == 0.0
    scores = rng.normal(size=40)
    labels = rng.random(40) < 0.3
    assert np.isclose(roc_auc(labels, scores) + roc_auc(labels, -scores), 1.0)


def test_summaries_report_designed_and_flipped_auc_for_baselines_only(run_inprocess):
    from .conftest import tiny_fed

    fed = tiny_fed(
        "fed.num_clients=4",
        "fed.num_free_riders=1",
        "fed.free_rider=plain",
        "fed.rounds=2",
        "fed.detectors=[mia_loss,l2,foolsgold,delta_dagmm]",
    )
    from papers.frida.metrics import summarize

    out = summarize(run_inprocess(fed))
    for det in ("l2", "foolsgold", "delta_dagmm"):
        assert np.isclose(out[f"auc.{det}"] + out[f"auc_flipped.{det}"], 1.0)
    assert "auc_flipped.mia_loss" not in out
    assert out["auc.l2"] == 1.0  # a plain free-rider sends a zero update: the lowest norm
    assert out["detected.mia_loss"] == 1.0 and out["rounds_to_detect.mia_loss"] >= 1
