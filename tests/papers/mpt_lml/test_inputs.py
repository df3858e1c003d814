"""Bad input is refused: in the library (ValueError naming what is wrong) and at every entry point
(exit 2, one line naming the key, before a run directory exists); a cell that produced no estimate
is failed, never "ok", and a run whose every cell failed exits 1."""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest
import torch

from common.config import compose, run_task
from papers.mpt_lml import area, gaussian, mlm
from papers.mpt_lml.masks import rate_to_size


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, math.nan])
def test_rates_outside_0_1_are_refused_not_clamped(rate):
    with pytest.raises(ValueError, match="masking rate"):
        rate_to_size(10, rate)
    with pytest.raises(ValueError, match="masking rates"):
        area.cumulative_from_curve([0.5, rate], np.ones(2), 10)


def test_library_refuses_empty_or_nan_input():
    g, x = gaussian.sample_ppca(4, 2, 5, 0.2, torch.Generator().manual_seed(0))
    data = gaussian.Moments.of(x)
    with pytest.raises(ValueError, match="masks_per_size must be >= 1"):
        gaussian.mc_scores(g, data, 0)  # used to return NaN
    with pytest.raises(ValueError, match="permutations must be >= 1"):
        gaussian.permutation_scores(g, data, 0)
    with pytest.raises(ValueError, match="NaN"):
        gaussian.Moments.of(x.clone().fill_(math.nan))
    with pytest.raises(ValueError, match="N, D >= 1"):
        gaussian.Moments.of(x[:0])
    with pytest.raises(ValueError, match="model 4"):
        gaussian.mc_scores(g, x[:, :3], 1)
    with pytest.raises(ValueError, match="mask sizes"):
        gaussian.mc_scores(g, data, 1, sizes=[0])
    with pytest.raises(ValueError, match="dim, latent, n >= 1"):
        gaussian.sample_ppca(0, 2, 5, 0.2)
    with pytest.raises(ValueError, match="noise_std"):
        gaussian.sample_ppca(4, 2, 5, math.nan)
    with pytest.raises(ValueError, match="rate step"):
        mlm.rate_grid(0.0)
    with pytest.raises(ValueError, match="step"):
        mlm.integrate_area([-1.0], 10, 0.0)


BAD = [  # the list: rates, P, D, NaN data, empty dims, steps, and the cross-key rules
    ("convergence", "dims=[0]", "dims[0]"),
    ("convergence", "dims=[]", "dims"),
    ("convergence", "noise_std=nan", "noise_std"),
    ("convergence", "masks_per_size=[0]", "masks_per_size[0]"),
    ("curve", "dim=-5", "dim"),
    ("ppca_training", "masks_per_size=0", "masks_per_size"),
    ("ppca_training", "objectives=[cumulative,rate_1.5]", "objectives[1]"),
    ("ppca_training", "steps=0", "steps"),
    ("noise_to_lml", "checkpoints=[0,999]", "checkpoints"),
    ("bernoulli_digits", "mpt_images=5000", "mpt_images"),
    ("mlm_hmm", "eval.rate_step=0", "eval.rate_step"),
    ("mlm_hmm", "eval.rate_step=1.5", "eval.rate_step"),
    ("mlm_hmm", "train.batch_size=-4", "train.batch_size"),
    ("mlm_hmm", "eval.fixed_rates=[1.0]", "eval.fixed_rates[0]"),
    ("mlm_hmm", "bert.heads=3", "bert.heads"),
    ("mlm_text", "train.objectives=[sometimes]", "train.objectives[0]"),
    ("mlm_text", "train.seeds=[]", "train.seeds"),
    ("mlm_glue", "tasks=[nosuch]", "tasks[0]"),
    ("mlm_pretrained", "names=[a]", "names"),
    ("mlm_pretrained", "orderings=1", "orderings"),
    ("benchmark", "masks=0", "masks"),
]


@pytest.mark.parametrize("name, override, key", BAD)
def test_bad_input_exits_2_naming_the_key_before_anything_is_written(
    name, override, key, tmp_path, capsys, monkeypatch
):
    module = importlib.import_module(f"papers.mpt_lml.{name}")
    monkeypatch.setattr(
        sys,
        "argv",
        [module.__name__, f"paths.results_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", override],
    )
    with pytest.raises(SystemExit) as exit_:
        module.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {key}:") and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "override, key", [("model=/no/such/dir", "model"), ("sequences=[ACDZ,AC]", "sequences[0]")]
)
def test_pretrained_model_errors_exit_2_and_leave_no_run_dir(tmp_path, override, key, caplog):
    from papers.mpt_lml import mlm_pretrained

    cfg = compose(
        "mpt_lml/mlm_pretrained",
        ["logger=none", f"paths.results_dir={tmp_path / 'r'}", override, "names=[a,b]"],
    )
    with pytest.raises(SystemExit) as err:
        run_task(mlm_pretrained.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2 and not (tmp_path / "run").exists()
    assert f"bad input: {key}:" in caplog.text


def test_a_cell_without_an_estimate_is_failed_and_an_all_failed_run_exits_1(tmp_path):
    from papers.mpt_lml import ppca_training

    cfg = compose(
        "mpt_lml/ppca_training",
        [
            "logger=none",
            f"paths.results_dir={tmp_path}",
            "dim=3",
            "n_data=20",
            "steps=4",
            "eval_every=1",
            "seeds=[0]",
            "lr=1e300",
            "objectives=[cumulative]",
        ],
    )
    with pytest.raises(SystemExit) as err:
        run_task(ppca_training.main.task, cfg, tmp_path / "run")
    assert err.value.code == 1
    rows = [
        json.loads(line)
        for line in (tmp_path / "mpt_lml" / "ppca_training" / "smoke" / "results.jsonl")
        .read_text()
        .splitlines()
    ]
    assert rows and all(r["status"] == "failed" and r["error"] for r in rows)
