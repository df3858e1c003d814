"""The canary protocol as a measured variable: its arithmetic, the clients that follow it, the
detectors that read it, the one-factor-at-a-time sweep and the overhead benchmark that prices it."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

from common.config import compose, run_task
from common.results import ResultStore
from papers.frida import bench, canary
from papers.frida.cells import CANARY_FACTORS, canary_cells, cell_federation
from papers.frida.detectors.property import infer_label_counts
from papers.frida.models import build_model, get_weights
from papers.frida.training import canary_schedule, local_train

from .conftest import tiny_fed

TINY = ["fed.num_clients=4", "fed.rounds=2", "fed.num_free_riders=1", "logger=none"]
QUICK = ["fed.rounds=1", "fed.local_epochs=1"]  # one short round is enough to count the canary


@pytest.mark.parametrize("n, k, batch, epochs", [(50, 20, 32, 5), (7, 5, 0, 3), (64, 10, 16, 2)])
def test_schedule_counts_what_each_protocol_costs(n, k, batch, epochs):
    every = canary_schedule(n, k, batch, epochs, "every_batch")
    assert (every.uses == every.steps).all() and every.canary_grads == every.steps * k
    share = canary_schedule(n, k, batch, epochs, "every_batch", per_batch=3)
    assert share.uses.sum() == share.steps * 3 and share.uses.max() - share.uses.min() <= 1
    epoch = canary_schedule(n, k, batch, epochs, "every_epoch")
    assert (epoch.uses == epochs).all() and epoch.canary_grads == epochs * k
    once = canary_schedule(n, k, batch, epochs, "every_round")
    assert (once.uses == 1).all() and once.canary_grads == k
    for s in (every, share, epoch, once):
        assert s.own_grads == epochs * n
    # the protocols order by the extra compute they ask of an honest client
    assert every.canary_grads > share.canary_grads
    assert every.canary_grads >= epoch.canary_grads > once.canary_grads


def _count_gradients(mode: str, per_batch: int = 0):
    """Sample-gradients local_train computes, counted by a hook on the first layer's input."""
    model = build_model("mlp", (1, 8, 8), 10, 4)
    seen = []
    model.body[1].register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])) if m.training else None)
    rng = np.random.default_rng(0)
    x, y = rng.random((50, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 50)
    cx, cy = rng.random((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 6)
    local_train(
        model,
        x,
        y,
        lr=0.1,
        epochs=3,
        batch_size=16,
        seed=0,
        canary_x=cx,
        canary_y=cy,
        canary_mode=mode,
        canary_per_batch=per_batch,
    )
    return seen


@pytest.mark.parametrize(
    "mode, per_batch", [("every_batch", 0), ("every_batch", 2), ("every_epoch", 0), ("every_round", 0)]
)
def test_clients_train_exactly_the_schedule(mode, per_batch):
    batches = _count_gradients(mode, per_batch)
    plan = canary_schedule(50, 6, 16, 3, mode, per_batch)
    assert len(batches) == plan.steps and sum(batches) == plan.total_grads


@pytest.mark.parametrize("mode", ["every_batch", "every_epoch", "every_round"])
def test_property_inference_subtracts_the_canary_of_each_protocol(mode):
    """The hand-built oracle (zero last layer, one full-batch step: exact) with a canary mixed in by
    each protocol: the client's own label counts come back, the canary's removed."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, 16, seed=3)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    before = get_weights(model)
    counts = np.array([5, 0, 3, 0, 0, 7, 1, 0, 2, 0])
    y = np.repeat(np.arange(10), counts)
    rng = np.random.default_rng(0)
    x = rng.random((len(y), 1, 8, 8)).astype(np.float32)
    cy = np.array([1, 1, 3, 9])
    cx = rng.random((4, 1, 8, 8)).astype(np.float32)
    local_train(
        model, x, y, lr=0.5, epochs=1, batch_size=0, seed=0, canary_x=cx, canary_y=cy, canary_mode=mode
    )
    change = get_weights(model)["head.bias"].astype(np.float64) - before["head.bias"]
    inferred = infer_label_counts(
        change, np.full(10, 0.1), len(y), lr=0.5, epochs=1, batch_size=0, canary_y=cy, canary_mode=mode
    )
    np.testing.assert_allclose(inferred, counts, atol=1e-4)


def test_the_sweep_changes_one_factor_at_a_time():
    base = tiny_fed()
    sweep = {
        "canary_modes": ["every_epoch", "every_batch"],
        "canary_sizes": [5],
        "canary_per_batch": [4],
        "local_epochs": [1],
        "lrs": [0.1],
    }
    cells = canary_cells(base, sweep, ["gradient_noiser"], ["iid"], [0])
    factors = [c["factor"] for c in cells]
    assert factors == ["base", "canary_modes", "canary_sizes", "canary_per_batch", "local_epochs", "lrs"]
    reference = asdict(cell_federation(base, cells[0]))
    for cell in cells[1:]:
        changed = {k for k, v in asdict(cell_federation(base, cell)).items() if reference[k] != v}
        assert changed == {CANARY_FACTORS[cell["factor"]]}, cell


def test_canary_sweep_runs_and_records_the_protocols_compute(tmp_path):
    overrides = [
        f"paths.results_dir={tmp_path}",
        *TINY,
        *QUICK,
        "canary_modes=[every_round]",
        "canary_sizes=[]",
        "canary_per_batch=[]",
        "local_epochs=[]",
        "lrs=[]",
        "free_riders=[gradient_noiser]",
        "partitions=['iid']",
        "seeds=[0]",
        "workers=1",
    ]
    run_task(canary.main.task, compose("frida/canary", overrides), tmp_path / "run")
    rows = ResultStore(tmp_path / "frida" / "canary" / "smoke" / "results.jsonl").load()
    assert sorted(rows["factor"]) == ["base", "canary_modes"] and (rows["status"] == "ok").all()
    by = rows.set_index("factor")
    assert 0 < by.loc["canary_modes", "canary_grads"] < by.loc["base", "canary_grads"]
    assert by.loc["canary_modes", "own_grads"] == by.loc["base", "own_grads"]
    assert 0.0 <= by.loc["canary_modes", "auc.mia_loss"] <= 1.0


def test_bench_prices_the_canary_and_the_detectors_against_training(tmp_path):
    cfg = compose(
        "frida/bench",
        [
            f"paths.results_dir={tmp_path}",
            *TINY,
            "repeats=1",
            "canary_modes=[none,every_batch]",
            "fed.detectors=[mia_loss,mia_grad,l2]",
        ],
    )
    out = run_task(bench.main.task, cfg, tmp_path / "run")
    cost = pd.DataFrame(out["canary_cost"]).set_index("canary_mode")
    assert cost.loc["none", "extra_sample_gradients"] == 0.0
    assert cost.loc["every_batch", "extra_sample_gradients"] > 0.3  # 20 canary samples in each batch of 32
    assert cost.loc["none", "ratio_to_no_canary"] == 1.0
    table = pd.DataFrame(out["overhead"])
    assert list(table["detector"])[:3] == ["mia_loss", "mia_grad", "l2"]
    assert (table["seconds_per_round"] > 0).all()
    train = table[table["detector"].str.startswith("client training")]
    assert float(train["ratio_to_training"].iloc[0]) == 1.0
