"""The masked-LM scorer: masks, random-init and trained tiny BERT, the HF collator path, areas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn.functional import cross_entropy

from common.config import compose
from papers.mpt_lml import (
    config,  # noqa: F401 - registers the schemas
    mlm,
    tokens,
)
from papers.mpt_lml.hmm import HMM
from papers.mpt_lml.masks import random_masks, rate_to_size


@pytest.fixture(scope="module")
def hmm_setup():
    cfg = compose("mpt_lml/mlm_hmm", ["seq_len=12"])
    hmm = HMM.random(cfg.hidden_states, cfg.symbols, cfg.concentration, cfg.seed)
    tokenizer = tokens.make_tokenizer([f"s{i}" for i in range(cfg.symbols)])
    ids = tokens.wrap(hmm.sample(64, cfg.seq_len, torch.Generator().manual_seed(5)))
    return cfg, hmm, tokenizer, ids


def test_random_masks_have_exact_sizes_and_skip_specials():
    ids = tokens.wrap(torch.randint(0, 4, (400, 10)))
    allowed = ~tokens.is_special(ids)
    sizes = torch.randint(1, 11, (400,))
    masked = random_masks(allowed, sizes, torch.Generator().manual_seed(0))
    assert torch.equal(masked.sum(-1), sizes)
    assert not bool((masked & ~allowed).any())
    per_position = masked[:, 1:-1].sum(0).double()
    assert float(per_position.std() / per_position.mean()) < 0.1  # uniform over positions
    with pytest.raises(ValueError):
        random_masks(allowed[:1], torch.tensor([11]))


def test_rate_to_size_and_grid():
    assert rate_to_size(32, 0.15) == 5 and rate_to_size(32, 0.001) == 1 and rate_to_size(32, 1.0) == 32
    assert rate_to_size(torch.tensor([10, 64]), 0.5).tolist() == [5, 32]
    grid = mlm.rate_grid(0.01)
    assert len(grid) == 99 and grid[0] == 0.01 and grid[-1] == 0.99


def test_integrate_area_is_the_authors_riemann_sum():
    assert mlm.integrate_area([math.nan, -2.0, -4.0], dims=10, step=0.5) == pytest.approx((2 + 4) * 0.5 * 10)


def test_random_init_bert_curve_is_flat_near_minus_log_v(hmm_setup):
    cfg, _, tokenizer, ids = hmm_setup
    model = mlm.tiny_bert(len(tokenizer), cfg.seq_len + 2, seed=0, **cfg.bert).eval()
    curve = mlm.rate_curve(
        mlm.bert_logits(model), ids, [0.05, 0.15, 0.5, 0.85, 0.99], 1, torch.Generator().manual_seed(0)
    ).mean(1)
    assert float((curve + math.log(len(tokenizer))).abs().max()) < 0.5


def test_training_lowers_the_area(hmm_setup):
    cfg, hmm, tokenizer, ids = hmm_setup
    gen = torch.Generator().manual_seed(1)

    def area(model):
        scores = mlm.cumulative_scores(mlm.bert_logits(model), ids, 1, torch.Generator().manual_seed(2))
        return -float(scores.sum(0).mean())

    model = mlm.tiny_bert(len(tokenizer), cfg.seq_len + 2, seed=0, **cfg.bert)
    random_area = area(model.eval())
    mlm.train_mlm(
        model, lambda n, g: tokens.wrap(hmm.sample(n, cfg.seq_len, g)), "uniform", 150, 32, 3e-3, 10, gen
    )
    trained_area = area(model)
    exact_area = -float(hmm.log_likelihood(ids[:, 1:-1] - tokens.OFFSET).mean())
    assert exact_area < trained_area < random_area - 3  # nats per 12-token sequence


def test_collator_curve_equals_trainer_style_batch_by_batch_loss(hmm_setup):
    """Our batched version of the authors' pipeline against the plain loop it replaces."""
    from transformers import DataCollatorForLanguageModeling

    cfg, _, tokenizer, ids = hmm_setup
    model = mlm.tiny_bert(len(tokenizer), cfg.seq_len + 2, seed=3, **cfg.bert).eval()
    logits = mlm.bert_logits(model)
    rates = [0.15, 0.6]
    got = mlm.collator_curve(logits, tokenizer, ids[:20], rates, batch_size=8, seed=42)
    special = tokens.is_special(ids[:20]).long()
    for rate, value in zip(rates, got):
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=rate, seed=42)
        losses, weights = [], []
        with torch.no_grad():
            for part in torch.arange(20).split(8):
                batch = collator([{"input_ids": ids[i], "special_tokens_mask": special[i]} for i in part])
                out = logits(batch["input_ids"])
                losses.append(
                    float(cross_entropy(out.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100))
                )
                weights.append(len(part))
        assert value == pytest.approx(-np.average(losses, weights=weights), abs=1e-5)
    assert got[0] != pytest.approx(got[1], abs=1e-3)  # the rate matters
