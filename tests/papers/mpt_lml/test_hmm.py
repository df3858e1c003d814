"""The HMM oracle against brute-force enumeration, and the MLM scorer recovering its LML."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from papers.mpt_lml import mlm, tokens
from papers.mpt_lml.hmm import HMM, HMMPredictor


def brute_joint(hmm: HMM, length: int) -> dict[tuple, float]:
    """p(x) for every sequence, by summing over every hidden path."""
    k, v = hmm.emission.shape
    out = {}
    for seq in itertools.product(range(v), repeat=length):
        total = 0.0
        for path in itertools.product(range(k), repeat=length):
            p = float(hmm.initial[path[0]])
            for t in range(length):
                p *= float(hmm.emission[path[t], seq[t]])
                if t + 1 < length:
                    p *= float(hmm.transition[path[t], path[t + 1]])
            total += p
        out[seq] = total
    return out


def test_forward_log_likelihood_and_masked_conditionals_match_enumeration():
    hmm = HMM.random(3, 3, 0.5, seed=0)
    length = 4
    joint = brute_joint(hmm, length)
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-12)
    seqs = torch.tensor(list(joint))
    assert torch.allclose(
        hmm.log_likelihood(seqs),
        torch.tensor([math.log(joint[tuple(s)]) for s in seqs.tolist()], dtype=torch.float64),
        atol=1e-12,
    )
    observed = torch.tensor([True, False, True, False])  # positions 1 and 3 masked
    got = hmm.conditional_log_probs(seqs, observed.expand(len(seqs), -1))
    for i, s in enumerate(seqs.tolist()):
        for t in (1, 3):  # p(x_t = v | x_0, x_2), the other masked position marginalised

            def marginal(fixed):
                return sum(p for q, p in joint.items() if all(q[j] == val for j, val in fixed.items()))

            denom = marginal({0: s[0], 2: s[2]})
            for v in range(3):
                want = marginal({0: s[0], 2: s[2], t: v}) / denom
                assert float(got[i, t, v].exp()) == pytest.approx(want, abs=1e-12)


def test_mlm_scorer_on_exact_predictor_exhaustive_equals_log_likelihood():
    hmm = HMM.random(4, 5, 0.3, seed=1)
    symbols = hmm.sample(3, 6, torch.Generator().manual_seed(0))
    ids = tokens.wrap(symbols)
    predictor = HMMPredictor(hmm, tokens.OFFSET + 5)
    total = torch.zeros(3, dtype=torch.float64)
    for m in range(1, 7):
        acc = torch.zeros(3, dtype=torch.float64)
        combos = list(itertools.combinations(range(1, 7), m))
        for combo in combos:
            masked = torch.zeros_like(ids, dtype=torch.bool)
            masked[:, list(combo)] = True
            acc += mlm.masked_token_log_probs(predictor, ids, masked).sum(-1) / m
        total += acc / len(combos)
    assert torch.allclose(total, hmm.log_likelihood(symbols), atol=1e-9, rtol=0)


def test_mlm_scorer_on_exact_predictor_recovers_log_likelihood_within_mc_error():
    hmm = HMM.random(6, 8, 0.2, seed=2)
    symbols = hmm.sample(96, 12, torch.Generator().manual_seed(1))
    scores = mlm.cumulative_scores(
        HMMPredictor(hmm, tokens.OFFSET + 8), tokens.wrap(symbols), 4, torch.Generator().manual_seed(2)
    )
    diff = scores.sum(0) - hmm.log_likelihood(symbols)
    z = float(diff.mean() / (diff.std() / math.sqrt(len(diff))))
    assert abs(z) < 4, f"z = {z:.2f}"
    assert float(diff.abs().mean()) < 0.2 * float(hmm.log_likelihood(symbols).abs().mean())  # a real test
