"""PLL, the chain rule along orderings, fixed-rate scores and the consistent area estimator, against
oracles: the exact HMM predictor (forward-backward), closed-form Gaussian scores and the Bernoulli
quadrature model, for which every quantity is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from papers.mpt_lml import area, gaussian, mlm, tokens
from papers.mpt_lml.bernoulli import BernoulliLatentLinear
from papers.mpt_lml.hmm import HMM, HMMPredictor
from papers.mpt_lml.mlm_experiment import score_model


@pytest.fixture(scope="module")
def hmm_case():
    hmm = HMM.random(6, 8, 0.2, seed=2)
    symbols = hmm.sample(128, 12, torch.Generator().manual_seed(1))
    ids = tokens.wrap(symbols)
    return hmm, HMMPredictor(hmm, tokens.OFFSET + 8), ids, hmm.log_likelihood(symbols)


def z(diff) -> float:
    diff = np.asarray(diff, dtype=float)
    return float(diff.mean() / (diff.std(ddof=1) / math.sqrt(len(diff))))


def test_chain_rule_along_any_ordering_is_log_p_for_the_exact_predictor(hmm_case):
    """One joint distribution: the chain rule gives log p(x) for every ordering, so the spread is 0."""
    hmm, predictor, ids, exact = hmm_case
    sizes, chain = mlm.ordering_scores(predictor, ids, 5, torch.Generator().manual_seed(0))
    assert sizes.shape == (5, 12, len(ids)) and chain.shape == (5, len(ids))
    assert torch.allclose(chain, exact.expand_as(chain), atol=1e-9, rtol=0)
    assert float(chain.std(0).max()) < 1e-9
    assert float(sizes.sum(1).std(0).mean()) > 0.1  # the cumulative score of one ordering is not exact


def test_pll_is_the_leave_one_out_sum_and_over_states_the_lml(hmm_case):
    hmm, predictor, ids, exact = hmm_case
    pll = mlm.pseudo_log_likelihood(predictor, ids)
    symbols = ids[:, 1:-1] - tokens.OFFSET
    everything = torch.ones_like(symbols, dtype=torch.bool)
    loo = hmm.conditional_log_probs(symbols, everything)  # x_t given all the others
    want = loo.gather(-1, symbols[..., None])[..., 0].sum(-1)
    assert torch.allclose(pll, want, atol=1e-10, rtol=0)
    assert z(pll - exact) > 4  # each token sees every other: PLL sits above log p(x), by many errors


def test_consistent_estimate_is_unbiased_on_the_oracle_and_the_authors_area_is_not(hmm_case):
    _, predictor, ids, exact = hmm_case
    rates = mlm.rate_grid(0.01)
    out = score_model(predictor, ids, 12, rates, 0.01, [0.15], seed=3, exact=exact, with_left_to_right=True)
    assert out["grid_has_both_ends"]
    assert abs(out["consistent_area_minus_exact_mean"]) < 4 * out["consistent_area_minus_exact_sem"]
    assert abs(out["cumulative_minus_exact_mean"]) < 4 * out["cumulative_minus_exact_sem"]
    assert abs(out["authors_area_minus_exact_mean"]) > 4 * out["authors_area_minus_exact_sem"]
    assert out["ordering_spread"] < 1e-9 and abs(out["orderings_chain_minus_exact_mean"]) < 1e-9
    assert abs(out["left_to_right_minus_exact_mean"]) < 1e-9  # reading order is one more ordering
    assert out["pll_minus_exact_mean"] > 0


def test_consistent_estimate_equals_the_exact_sum_on_exhaustive_gaussian_scores():
    g, x = gaussian.sample_ppca(10, 2, 50, 0.3, torch.Generator().manual_seed(0))
    exhaustive = gaussian.exhaustive_scores(g, gaussian.Moments.of(x)).numpy()  # S(m) exactly, m = 1..10
    lml = float(g.mean_log_prob(gaussian.Moments.of(x)))
    assert exhaustive.sum() == pytest.approx(lml, abs=1e-9)
    rates = mlm.rate_grid(0.01)
    curve = exhaustive[area.sizes_of(rates, 10) - 1]
    estimate, ends = area.cumulative_from_curve(rates, curve, 10)
    assert ends and float(estimate) == pytest.approx(lml, abs=1e-9)  # every size measured: exact
    riemann = -float(area.authors_area(curve, 0.01, 10))
    assert abs(riemann - lml) > 1e-2  # unequal weights per size and a missed end: biased


def test_consistent_estimate_converges_as_the_grid_refines_and_needs_both_ends():
    dims = 200
    sizes = np.arange(1, dims + 1)
    curve_of = lambda m: -1.0 - 2.0 * (m / dims) ** 2 + 0.3 * np.log(m)  # noqa: E731 - a smooth S(m)
    truth = curve_of(sizes).sum()
    errors = []
    for step in (0.1, 0.05, 0.02, 0.005):
        rates = area.with_ends(mlm.rate_grid(step), dims)
        est, ends = area.cumulative_from_curve(rates, curve_of(area.sizes_of(rates, dims)), dims)
        assert ends
        errors.append(abs(float(est) - truth))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-2 * errors[0] + 1e-12
    coarse = mlm.rate_grid(0.1)
    riemann = -float(area.authors_area(curve_of(area.sizes_of(coarse, dims)), 0.1, dims))
    assert abs(riemann - truth) > errors[0]


def test_vocab_restricted_log_probs_are_normalised_over_the_kept_ids():
    logits = torch.randn(1, 4, 9, dtype=torch.float64)
    vocab = torch.tensor([5, 6, 7, 8])
    total = torch.zeros(1, 4, dtype=torch.float64)
    for v in vocab:
        ids = torch.full((1, 4), int(v))
        masked = torch.ones(1, 4, dtype=torch.bool)
        total += mlm.masked_token_log_probs(lambda _: logits, ids, masked, vocab=vocab).exp()
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)


@pytest.mark.parametrize("latent", [1, 2])
def test_bernoulli_orderings_chain_rule_is_the_quadrature_lml_and_the_cumulative_score_is_unbiased(latent):
    gen = torch.Generator().manual_seed(0)
    model = BernoulliLatentLinear(6, latent, nodes_per_dim=6, init_scale=1.5, generator=gen)
    with torch.no_grad():
        model.bias.copy_(torch.randn(6, dtype=torch.float64, generator=gen))
        x = (torch.rand(4, 6, generator=gen) < 0.4).double()
        sizes, chain = model.ordering_scores(x, 400, torch.Generator().manual_seed(1))
        exact = model.log_marginal(x)
        exhaustive = model.exhaustive_scores(x)
    assert torch.allclose(chain, exact.expand_as(chain), atol=1e-10, rtol=0)
    for i in range(4):  # each size's orderings estimate against the exhaustive average over masks
        for m in range(6):
            draws = sizes[:, m, i].numpy()
            if draws.std() > 1e-12:
                sem = draws.std(ddof=1) / math.sqrt(len(draws))
                assert abs(draws.mean() - float(exhaustive[m, i])) < 5 * sem
    cumulative = sizes.sum(1)
    assert float((cumulative.mean(0) - exact).abs().max()) < 5 * float(cumulative.std(0).max()) / 20


def test_antiberty_loads_with_its_mlm_head_and_our_pll_matches_its_own_recipe():
    """AntiBERTy's pseudo_log_likelihood (antiberty 0.1.3): special-token logits set to -inf, each
    residue masked alone, the mean cross-entropy. Ours, with the vocabulary cut to the residues, must
    give the same number (times -D)."""
    import importlib.util

    if importlib.util.find_spec("antiberty") is None:
        pytest.skip("the antiberty wheel (pip install --no-deps antiberty==0.1.3)")
    from transformers import BertForMaskedLM

    from papers.mpt_lml.mlm_pretrained import SPECIALS, encode, model_files, read_vocab

    checkpoint, vocab_file = model_files("antiberty")
    model, info = BertForMaskedLM.from_pretrained(str(checkpoint), output_loading_info=True)
    assert not info["missing_keys"]  # the MLM head is the checkpoint's, nothing initialised at random
    vocab = read_vocab(vocab_file)
    seq = "EVQLVESGGGLVQ"
    (ids,) = encode([seq], vocab)
    special_ids = [vocab.index(t) for t in SPECIALS]
    residues = torch.tensor([i for i in range(len(vocab)) if i not in special_ids])
    special = torch.isin(ids, torch.tensor(special_ids))
    with torch.no_grad():
        ours = mlm.pseudo_log_likelihood(
            mlm.bert_logits(model.eval()), ids, special=special, mask_id=vocab.index("[MASK]"), vocab=residues
        )
        batch = ids.repeat(len(seq), 1)
        batch[torch.arange(len(seq)), torch.arange(1, len(seq) + 1)] = vocab.index("[MASK]")
        logits = model(input_ids=batch).logits.double()
        logits[:, :, special_ids] = -torch.inf
        logits = logits[:, 1:-1].diagonal(dim1=0, dim2=1).T  # position i of copy i
        theirs = torch.nn.functional.cross_entropy(logits, ids[0, 1:-1], reduction="mean")
    assert float(ours[0]) == pytest.approx(-len(seq) * float(theirs), abs=1e-6)
