"""Oracles: FedAvg against centralised gradient descent, label counts on a hand-built case, and a
plain free-rider caught by every FRIDA detector within three rounds."""

import numpy as np
import pytest
import torch

from papers.frida.config import FRIDA_DETECTORS
from papers.frida.detectors.base import ClientUpdate, RoundView
from papers.frida.detectors.property import infer_label_counts, inferred_distributions
from papers.frida.federated_data import federated_data
from papers.frida.models import build_model, get_weights, set_weights
from papers.frida.training import local_train

from .conftest import tiny_fed


def test_fedavg_without_free_riders_equals_centralised_gradient_descent(run_inprocess):
    """One full-batch step per round, FedAvg weighted by example counts: the average of the
    clients' steps is the step on the union of their data. Tolerance: 1e-5 (float32 sums)."""
    fed = tiny_fed(
        "fed.free_rider=none",
        "fed.num_free_riders=0",
        "fed.detectors=[]",
        "fed.canary_size=0",
        "fed.partition=dirichlet",
        "fed.alpha=0.5",
        "fed.num_clients=4",
        "fed.rounds=3",
        "fed.local_epochs=1",
        "fed.batch_size=0",
        "fed.lr=0.5",
    )
    result = run_inprocess(fed)
    data = federated_data(fed)
    assert len({len(c) for c in data.clients}) > 1  # unequal clients: the weighting matters
    model = build_model(fed.model, data.input_shape, data.num_classes, fed.hidden, seed=fed.seed)
    x = np.concatenate([c.x for c in data.clients])
    y = np.concatenate([c.y for c in data.clients])
    for _ in range(fed.rounds):
        local_train(model, x, y, lr=fed.lr, epochs=1, batch_size=0, seed=0)
    central = get_weights(model)
    for name, value in result.final_weights.items():
        np.testing.assert_allclose(value, central[name], atol=1e-5, rtol=0)
    assert result.rounds[-1]["test_accuracy"] > result.rounds[0]["test_accuracy"]


def test_property_inference_recovers_label_counts_on_a_hand_built_case():
    """A zero last layer predicts uniformly whatever the input, so the noise calibration is exact and
    one full-batch SGD step gives back the client's label counts."""
    fed = tiny_fed(
        "fed.local_epochs=1",
        "fed.batch_size=0",
        "fed.lr=0.5",
        "fed.canary_size=0",
        "fed.detectors=[pia_dist]",
    )
    model = build_model("mlp", (1, 8, 8), 10, 16, seed=3)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    before = get_weights(model)
    counts = np.array([5, 0, 3, 0, 0, 7, 1, 0, 2, 0])
    y = np.repeat(np.arange(10), counts)
    x = np.random.default_rng(0).random((len(y), 1, 8, 8)).astype(np.float32)
    local_train(model, x, y, lr=fed.lr, epochs=1, batch_size=0, seed=0)
    after = get_weights(model)
    change = after["head.bias"].astype(np.float64) - before["head.bias"]
    inferred = infer_label_counts(change, np.full(10, 0.1), len(y), lr=fed.lr, epochs=1, batch_size=0)
    np.testing.assert_allclose(inferred, counts, atol=1e-4)
    # the same through the detector's path (noise calibration on the models themselves)
    template = set_weights(build_model("mlp", (1, 8, 8), 10, 16), before)
    no_canary = (np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64))
    view = RoundView(1, fed, before, [ClientUpdate(0, after, len(y))], *no_canary, x[:2], y[:2], 10, template)
    q = inferred_distributions(view)[0]
    # the client's own prediction term is no longer exactly uniform after its step: a close match
    assert np.abs(q - counts / counts.sum()).max() < 0.02


def test_a_plain_free_rider_is_flagged_by_every_frida_detector_within_three_rounds(run_inprocess):
    fed = tiny_fed(
        "fed.free_rider=plain",
        "fed.num_free_riders=1",
        "fed.rounds=3",
        f"fed.detectors=[{','.join(FRIDA_DETECTORS)}]",
    )
    result = run_inprocess(fed)
    rows = [r for r in result.clients if r["free_rider"]]
    assert len(rows) == 3 and {r["round"] for r in rows} == {1, 2, 3}
    for name in FRIDA_DETECTORS:
        assert any(r[f"flag.{name}"] for r in rows), f"{name} never flagged the plain free-rider"
    honest = [r for r in result.clients if not r["free_rider"]]
    assert np.mean([r["flag.vote"] for r in honest]) < 0.5


SHAKESPEARE = [
    "fed.partition=natural",
    "fed.min_partition_size=64",
    "fed.test_fraction=0.01",
    "fed.pool_fraction=0.01",
    "fed.canary_size=8",
    "fed.batch_size=16",
]


def _one_round(run_inprocess, tmp_path, dataset, model, *extra):
    fed = tiny_fed(
        f"fed.dataset={dataset}",
        f"fed.model={model}",
        f"fed.data_dir={tmp_path}",
        "fed.num_clients=3",
        "fed.rounds=1",
        "fed.max_client_samples=96",
        "fed.num_free_riders=1",
        "fed.local_epochs=1",
        *extra,
    )
    result = run_inprocess(fed)
    assert [r["status"] for r in result.clients] == ["ok"] * 3, dataset
    assert all(np.isfinite(r["score.mia_grad"]) for r in result.clients), dataset
    assert 0.0 <= result.rounds[-1]["test_accuracy"] <= 1.0


def test_other_offline_datasets_and_models_run_a_round(run_inprocess, tmp_path):
    """MNIST-1D with the MLP, and Shakespeare's speakers (one client per (play, speaker)) with the
    character GRU: a round each, every detector watching."""
    _one_round(run_inprocess, tmp_path, "mnist1d", "mlp")
    _one_round(run_inprocess, tmp_path, "shakespeare", "gru", *SHAKESPEARE)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_the_research_datasets_run_a_round_with_lenet(run_inprocess, tmp_path, dataset):
    _one_round(run_inprocess, tmp_path, dataset, "lenet5", "fed.test_fraction=0.05")
