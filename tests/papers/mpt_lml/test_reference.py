"""The authors' BERT curves (reference/) as published measurements: our area code reproduces the
areas in their README, and their random-BERT curves behave as our theory says (flat at -log V)."""

from __future__ import annotations

import math

import pytest

from papers.mpt_lml.reference import authors_areas, authors_curves

README_AREAS = {  # the table in reference/README.md (from the shared data README), per 512 tokens
    "pretrained": {"ax": 1715.8, "cola": 1657.7, "mrpc": 1773.5, "qnli": 1770.3, "sst2": 1745.6},
    "random": {"ax": 5245.3, "cola": 5283.5, "mrpc": 5362.2, "qnli": 5344.0, "sst2": 5255.4},
}


def test_areas_match_the_authors_table():
    areas = authors_areas()
    for model, per_task in README_AREAS.items():
        for task, want in per_task.items():
            assert areas[model][task] == pytest.approx(want, abs=0.06)


def test_authors_random_bert_is_flat_near_minus_log_v_and_pretrained_beats_it():
    curves = authors_curves().dropna()
    assert len(curves) == 990  # 5 tasks x 2 models x 99 rates (rate 0 is empty)
    random = curves[curves.model == "random"]
    assert float((random.neg_eval_loss + math.log(30522)).abs().max()) < 0.5
    areas = authors_areas()
    assert all(areas["pretrained"][t] < areas["random"][t] / 2 for t in README_AREAS["random"])
