"""MPT scores of masked language models, the HF collator path, and tiny-BERT training.

The scorer follows the theory, not BERT's recipe: a mask of exactly m non-special positions, every
masked position replaced by [MASK] (no 80/10/10), each masked token scored from one forward pass
given the unmasked rest, normalised by 1/m. Then S(m) averaged over masks is the MPT curve and
sum_{m=1..D} S(m) estimates log p(x) without bias. A "model" is any callable from token ids (N, L)
to logits (N, L, V): a transformers `BertForMaskedLM` (through `bert_logits`) or the exact HMM.

`collator_curve` is the authors' pipeline instead (HF `DataCollatorForLanguageModeling`: Bernoulli
selection, 80/10/10 replacement, loss averaged per labelled token and then over batches of 8
sequences, as `Trainer.evaluate` does), kept so our curves can be set beside theirs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn.functional import cross_entropy, log_softmax

from papers.mpt_lml.masks import random_masks, rate_to_size
from papers.mpt_lml.tokens import MASK, PAD, is_special

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def tiny_bert(
    vocab_size: int,
    max_len: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    dropout: float,
    seed: int,
):
    """A randomly initialised BertForMaskedLM from a small BertConfig: nothing is downloaded."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_len,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=PAD,
    )
    return BertForMaskedLM(config)


def bert_logits(model, pad_id: int = PAD) -> LogitsFn:
    """Per-position logits of a transformers masked LM, padding hidden from attention."""

    def logits(ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, attention_mask=(ids != pad_id).long()).logits

    return logits


def masked_token_log_probs(
    model: LogitsFn,
    ids: torch.Tensor,
    masked: torch.Tensor,
    mask_id: int = MASK,
    vocab: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(true token | input with every masked position set to [MASK]) where masked, else 0.

    `vocab` (sorted token ids) renormalises over those ids only (e.g. a protein model's 20 residues,
    as AntiBERTy's own pseudo-likelihood does); every true token at a masked position must be in it."""
    logits = model(ids.masked_fill(masked, mask_id)).double()
    if vocab is None:
        logp = log_softmax(logits, dim=-1).gather(-1, ids[..., None])[..., 0]
    else:
        where = torch.searchsorted(vocab, ids).clamp_max(len(vocab) - 1)
        logp = log_softmax(logits[..., vocab], dim=-1).gather(-1, where[..., None])[..., 0]
    return torch.where(masked, logp, 0.0)


@torch.no_grad()
def ordering_scores(
    model: LogitsFn,
    ids: torch.Tensor,
    orderings: int,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    special: torch.Tensor | None = None,
    mask_id: int = MASK,
    vocab: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative MPT along random orderings: (sizes (P, D, N), chain (P, N)), D maskable tokens per row.

    Ordering p of a row's maskable positions gives one mask of every size m (its last m positions), so
    one forward pass per (row, ordering, size) yields S_p(x; m) = (1/m) sum_{t in M} log p(x_t | x_-M)
    for every m = 1..D at once: sizes[p, m-1, n], an unbiased MC estimate of S(x; m) for each m, whose
    sum over m estimates log p(x) (`cumulative`). The same passes give the chain rule along the
    ordering, chain[p, n] = sum_i log p(x_(i) | x_(1..i-1)) (the first masked position of each pass).
    For a model whose conditionals come from one joint distribution that sum is log p(x) exactly for
    every ordering, so its spread across orderings measures how inconsistent the conditionals are;
    its mean over orderings estimates the same quantity as the cumulative score.
    """
    special = is_special(ids) if special is None else special
    allowed = ~special
    dims = allowed.sum(-1)
    if orderings < 1:
        raise ValueError(f"orderings must be >= 1, got {orderings}")
    if bool((dims < 1).any()):
        raise ValueError("every sequence needs at least one maskable token")
    if bool((dims != dims[0]).any()):
        raise ValueError("ordering_scores needs sequences with the same number of maskable tokens")
    n, dim = ids.shape[0], int(dims[0])
    keys = torch.rand(orderings, *ids.shape, generator=generator, dtype=torch.float64)
    ranks = keys.masked_fill(special, torch.inf).argsort(-1).argsort(-1)  # (P, N, L); specials ranked last
    sizes = torch.arange(1, dim + 1)
    # job (p, m, n): mask the positions of rank >= D - m among the maskable ones
    rank = ranks[:, None, :, :].expand(orderings, dim, n, ids.shape[1])
    first = (dim - sizes)[None, :, None, None]
    masked = (rank >= first) & allowed  # (P, D, N, L)
    head = (rank == first) & allowed  # the chain-rule position of each pass
    flat_masked = masked.reshape(-1, ids.shape[1])
    flat_ids = ids[None, None].expand(orderings, dim, n, ids.shape[1]).reshape(-1, ids.shape[1])
    logp = torch.empty(flat_ids.shape, dtype=torch.float64)
    for part in torch.arange(flat_ids.shape[0]).split(batch_size):
        logp[part] = masked_token_log_probs(model, flat_ids[part], flat_masked[part], mask_id, vocab)
    logp = logp.reshape(masked.shape)
    size_scores = logp.sum(-1) / sizes[None, :, None]
    chain = torch.where(head, logp, 0.0).sum((-1, 1))
    return size_scores, chain


@torch.no_grad()
def pseudo_log_likelihood(
    model: LogitsFn,
    ids: torch.Tensor,
    batch_size: int = 256,
    special: torch.Tensor | None = None,
    mask_id: int = MASK,
    vocab: torch.Tensor | None = None,
) -> torch.Tensor:
    """PLL (Salazar et al. 2020): sum_t log p(x_t | x_-t), every maskable token masked alone: (N,).

    It equals D * S(x; 1), the fixed rate 1/D on the LML's scale; each token sees all the others,
    so for data from a consistent model it over-states log p(x) in expectation."""
    special = is_special(ids) if special is None else special
    rows, cols = (~special).nonzero(as_tuple=True)
    if len(rows) == 0:
        raise ValueError("no maskable token")
    masked = torch.zeros(len(rows), ids.shape[1], dtype=torch.bool)
    masked[torch.arange(len(rows)), cols] = True
    total = torch.zeros(ids.shape[0], dtype=torch.float64)
    for part in torch.arange(len(rows)).split(batch_size):
        lp = masked_token_log_probs(model, ids[rows[part]], masked[part], mask_id, vocab).sum(-1)
        total.index_add_(0, rows[part], lp)
    return total


@torch.no_grad()
def size_scores(
    model: LogitsFn,
    ids: torch.Tensor,
    sizes: torch.Tensor,
    masks: int,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    special: torch.Tensor | None = None,
    mask_id: int = MASK,
) -> torch.Tensor:
    """MC S(x; m_i) per sequence: row i masks sizes[i] of its non-special tokens, `masks` draws. (N,)

    `special` (N, L) marks positions never masked: by default the ids of the `tokens` layout; pass
    it (and `mask_id`) for another vocabulary, e.g. bert-base-uncased's."""
    allowed = ~(is_special(ids) if special is None else special)
    total = torch.zeros(ids.shape[0], dtype=torch.float64)
    for _ in range(masks):
        masked = random_masks(allowed, sizes, generator)
        for part in torch.arange(ids.shape[0]).split(batch_size):
            lp = masked_token_log_probs(model, ids[part], masked[part], mask_id)
            total[part] += lp.sum(-1) / sizes[part]
    return total / masks


def rate_curve(
    model: LogitsFn,
    ids: torch.Tensor,
    rates: Sequence[float],
    masks: int,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    special: torch.Tensor | None = None,
    mask_id: int = MASK,
) -> torch.Tensor:
    """S at each masking rate, m = round(rate * D_i) for sequence i: (len(rates), N)."""
    special = is_special(ids) if special is None else special
    dims = (~special).sum(-1)
    return torch.stack(
        [
            size_scores(model, ids, rate_to_size(dims, r), masks, generator, batch_size, special, mask_id)
            for r in rates
        ]
    )


def cumulative_scores(
    model: LogitsFn,
    ids: torch.Tensor,
    masks_per_size: int,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """S(x; m) for every m = 1..D (sequences of one length D): (D, N); its sum estimates log p(x)."""
    dims = (~is_special(ids)).sum(-1)
    if bool((dims != dims[0]).any()):
        raise ValueError("cumulative_scores needs sequences with the same number of tokens")
    sizes = range(1, int(dims[0]) + 1)
    return torch.stack(
        [
            size_scores(model, ids, torch.full_like(dims, m), masks_per_size, generator, batch_size)
            for m in sizes
        ]
    )


def rate_grid(step: float) -> list[float]:
    """Masking rates step, 2 step, ... < 1 (the authors' grid without its NaN rate 0)."""
    if not 0 < step <= 0.5:
        raise ValueError(f"rate step must lie in (0, 0.5] (at least one rate below 1), got {step}")
    count = round(1 / step)
    return [round(i * step, 10) for i in range(1, count)]


def integrate_area(neg_losses: Sequence[float], dims: int, step: float = 0.01) -> float:
    """The authors' `integrate_area`: sum over rates of loss * step * dims (NaN rates skipped).

    A Riemann sum of -sum_m S(m) with m = rate * dims: an estimate of -log p(x) per sequence of
    `dims` tokens, positive, smaller for a better model.
    """
    if not 0 < step < 1 or dims < 1:
        raise ValueError(f"need 0 < step < 1 and dims >= 1, got step={step}, dims={dims}")
    values = np.asarray(neg_losses, dtype=float)
    return float(np.nansum(-values) * step * dims)


@torch.no_grad()
def collator_curve(
    model: LogitsFn,
    tokenizer,
    ids: torch.Tensor,
    rates: Sequence[float],
    batch_size: int = 8,
    seed: int = 42,
    forward_batch: int = 256,
    special: torch.Tensor | None = None,
) -> list[float]:
    """-eval_loss at each rate through HF `DataCollatorForLanguageModeling` (80/10/10): the mean
    loss over labelled tokens of each collated batch of `batch_size` sequences, averaged over
    batches weighted by their sequences, as `Trainer.evaluate` does. Batches are collated as the
    Trainer would and then run through the model together, which gives the same numbers."""
    from transformers import DataCollatorForLanguageModeling

    special = (is_special(ids) if special is None else special).long()
    groups = torch.arange(ids.shape[0]).split(batch_size)
    out = []
    for rate in rates:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=rate, seed=seed)
        batches = [
            collator([{"input_ids": ids[i], "special_tokens_mask": special[i]} for i in g]) for g in groups
        ]
        inputs = torch.cat([b["input_ids"] for b in batches])
        labels = torch.cat([b["labels"] for b in batches])
        nll = torch.cat(
            [
                cross_entropy(
                    model(inputs[part]).double().transpose(1, 2),
                    labels[part],
                    ignore_index=-100,
                    reduction="none",
                )
                for part in torch.arange(ids.shape[0]).split(forward_batch)
            ]
        )
        total, count = 0.0, 0
        for g in groups:
            labelled = labels[g] != -100
            if bool(labelled.any()):  # a batch with nothing selected has no loss (NaN in the Trainer)
                total += float(nll[g][labelled].mean()) * len(g)
                count += len(g)
        out.append(-total / count if count else math.nan)
    return out


def train_mlm(
    model,
    sample: Callable[[int, torch.Generator], torch.Tensor],
    objective: str,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    generator: torch.Generator,
    fixed_rate: float = 0.15,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train a masked LM with exact-count, all-[MASK] masks; returns the loss per step.

    objective "uniform": m ~ U{1..D} per sequence, loss -(1/m) sum_{t in M} log p: an unbiased
    estimate of -log p(x) / D, i.e. cumulative MPT. "fixed": m = round(fixed_rate * D), the
    BERT-style rate. Both use the same masking, so only the rate distribution differs.
    """
    if objective not in ("uniform", "fixed"):
        raise ValueError(f"objective must be 'uniform' or 'fixed', got {objective!r}")
    if steps < 1 or batch_size < 1 or not lr > 0 or warmup < 0 or not 0 < fixed_rate < 1:
        raise ValueError(
            f"need steps >= 1, batch_size >= 1, lr > 0, warmup >= 0 and 0 < fixed_rate < 1; got "
            f"{steps}, {batch_size}, {lr}, {warmup}, {fixed_rate}"
        )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, 1 - s / steps)
    )
    logits = bert_logits(model)
    model.train()
    losses = []
    for _ in range(steps):
        ids = sample(batch_size, generator)
        allowed = ~is_special(ids)
        dims = allowed.sum(-1)
        if objective == "uniform":
            sizes = (torch.rand(dims.shape, generator=generator, dtype=torch.float64) * dims).long() + 1
        else:
            sizes = rate_to_size(dims, fixed_rate)
        masked = random_masks(allowed, sizes, generator)
        loss = -(masked_token_log_probs(logits, ids, masked).sum(-1) / sizes).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"the training loss is {losses[-1]} at step {len(losses)}")
        if progress is not None:
            progress(len(losses), losses[-1])
    model.eval()
    return losses
