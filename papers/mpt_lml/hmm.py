"""A synthetic hidden-Markov language: exact log-likelihood and exact MPT conditionals.

An HMM is a language whose LML is known, so it is the oracle for the masked-LM scorer: the
forward-backward algorithm gives log p(x) and, with the masked positions' emissions marginalised
(their likelihood set to 1), the exact conditional of each masked token given the *unmasked* tokens

    p(x_t = v | x_{-M}) ∝ sum_h p(h_t = h, x_{-M, <t}) p(x_{-M, >t} | h_t = h) B[h, v],

which is what the MPT identity needs. `HMMPredictor` wraps this as a model that returns per-position
logits from token ids with [MASK] at masked positions, so the same scoring code that scores BERT
scores it, and its cumulative score must recover log p(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from papers.mpt_lml.tokens import OFFSET


@dataclass
class HMM:
    initial: torch.Tensor  # (K,)
    transition: torch.Tensor  # (K, K), rows sum to one
    emission: torch.Tensor  # (K, V), rows sum to one

    @property
    def symbols(self) -> int:
        return self.emission.shape[1]

    @classmethod
    def random(cls, states: int, symbols: int, concentration: float, seed: int) -> HMM:
        """Rows drawn from Dirichlet(concentration): small values give peaked, predictable rows."""
        rng = np.random.default_rng(seed)

        def rows(n: int, k: int) -> torch.Tensor:
            return torch.from_numpy(rng.dirichlet(np.full(k, concentration), size=n))

        return cls(rows(1, states)[0], rows(states, states), rows(states, symbols))

    def sample(self, n: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences of `length` symbols: (n, length) int64."""
        state = torch.multinomial(self.initial.expand(n, -1), 1, generator=generator)[:, 0]
        out = torch.empty(n, length, dtype=torch.long)
        for t in range(length):
            out[:, t] = torch.multinomial(self.emission[state], 1, generator=generator)[:, 0]
            state = torch.multinomial(self.transition[state], 1, generator=generator)[:, 0]
        return out

    def _evidence(self, symbols: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Emission likelihood of each position under each state, 1 where unobserved: (n, L, K)."""
        lik = self.emission.T[symbols.clamp(0, self.symbols - 1)]
        return torch.where(observed[..., None], lik, torch.ones_like(lik))

    def log_likelihood(self, symbols: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_observed) by the scaled forward pass: (n,). All positions observed by default."""
        observed = torch.ones_like(symbols, dtype=torch.bool) if observed is None else observed
        evidence = self._evidence(symbols, observed)
        pred = self.initial.expand(symbols.shape[0], -1)
        total = torch.zeros(symbols.shape[0], dtype=torch.float64)
        for t in range(symbols.shape[1]):
            filt = pred * evidence[:, t]
            norm = filt.sum(-1)
            total = total + norm.log()
            pred = (filt / norm[:, None]) @ self.transition
        return total

    def conditional_log_probs(self, symbols: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """log p(x_t = v | x at the observed positions other than t): (n, L, V).

        At an unobserved (masked) t this is the MPT conditional given the unmasked rest; at an
        observed t it is the leave-one-out conditional. Messages are normalised at every step.
        """
        n, length = symbols.shape
        evidence = self._evidence(symbols, observed)
        forward = []  # p(h_t | observed before t), before the emission at t
        pred = self.initial.expand(n, -1)
        for t in range(length):
            forward.append(pred)
            filt = pred * evidence[:, t]
            pred = (filt / filt.sum(-1, keepdim=True)) @ self.transition
        backward = [None] * length  # ∝ p(observed after t | h_t)
        msg = torch.ones(n, self.initial.shape[0], dtype=torch.float64)
        for t in reversed(range(length)):
            backward[t] = msg
            msg = (evidence[:, t] * msg) @ self.transition.T
            msg = msg / msg.sum(-1, keepdim=True)
        post = torch.stack(forward, 1) * torch.stack(backward, 1)  # (n, L, K)
        post = post / post.sum(-1, keepdim=True)
        return (post @ self.emission).log()


class HMMPredictor:
    """The exact HMM as a masked LM: token ids (N, L + 2) in the `tokens` layout -> logits.

    Any id that is not a symbol at a symbol position ([MASK], or a special token the HF collator's
    random replacement put there) is treated as unobserved. Special positions get flat logits; the
    scorer never reads them.
    """

    def __init__(self, hmm: HMM, vocab_size: int):
        self.hmm = hmm
        self.vocab_size = vocab_size

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        inner = ids[:, 1:-1] - OFFSET
        observed = (inner >= 0) & (inner < self.hmm.symbols)
        logp = self.hmm.conditional_log_probs(inner, observed)
        logits = torch.zeros(*ids.shape, self.vocab_size, dtype=torch.float64)
        logits[:, 1:-1] = -torch.inf
        logits[:, 1:-1, OFFSET : OFFSET + self.hmm.symbols] = logp
        return logits
