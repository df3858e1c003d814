"""What the masked-LM experiments share: train tiny BERTs, score every model the same way.

Each model (a random-init BERT, BERTs trained with uniform-rate or fixed-rate masking, once per
training seed, and any exact predictor) is one result cell. Sequences all have D maskable tokens.
One set of forward passes along `orderings` random orderings per sequence gives S(m) for every
m = 1..D (nested masks), hence
- the cumulative score sum_m S(m), an unbiased estimate of log p(x) for a consistent model;
- the chain rule along each ordering, whose spread across orderings is zero for conditionals that
  come from one joint distribution (the inconsistency measure);
- fixed-rate scores D * S(round(r D)); the rate curve read off at m = round(rate * D), its authors'
  Riemann area and the consistent estimate from that curve (`area.py`).
Beside them: the pseudo-log-likelihood (PLL, every token masked alone, D * S(1)), the left-to-right
chain rule (one fixed ordering) and the HF-collator curve (80/10/10, the authors' pipeline).
Every value is per sequence (nats), with its standard error over sequences; against an exact
log-likelihood the per-sequence differences are reported, so their error is the difference's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from papers.mpt_lml import area, mlm
from papers.mpt_lml.masks import rate_to_size
from papers.mpt_lml.tokens import is_special

log = logging.getLogger(__name__)
LN2 = math.log(2)


def left_to_right(
    model: mlm.LogitsFn, ids: torch.Tensor, batch_size: int, special=None, mask_id=None, vocab=None
) -> torch.Tensor:
    """The chain rule in reading order, sum_i log p(x_i | x_<i) with x_>=i masked: (N,)."""
    special = is_special(ids) if special is None else special
    allowed = ~special
    position = allowed.long().cumsum(-1)  # 1-based rank of each maskable token in reading order
    dims = int(allowed.sum(-1)[0])
    total = torch.zeros(ids.shape[0], dtype=torch.float64)
    kwargs = {} if mask_id is None else {"mask_id": mask_id}
    with torch.no_grad():
        for i in range(1, dims + 1):
            masked = allowed & (position >= i)
            head = allowed & (position == i)
            for part in torch.arange(ids.shape[0]).split(batch_size):
                lp = mlm.masked_token_log_probs(model, ids[part], masked[part], vocab=vocab, **kwargs)
                total[part] += torch.where(head[part], lp, 0.0).sum(-1)
    return total


def score_model(
    model: mlm.LogitsFn,
    ids: torch.Tensor,
    orderings: int,
    rates: list[float],
    step: float,
    fixed_rates: list[float],
    seed: int,
    batch_size: int = 256,
    special=None,
    mask_id=None,
    vocab=None,
    exact: torch.Tensor | None = None,
    with_left_to_right: bool = True,
) -> dict:
    """Every score of one model on sequences `ids` with the same number D of maskable tokens."""
    special = is_special(ids) if special is None else special
    kwargs = {"special": special, "vocab": vocab, **({} if mask_id is None else {"mask_id": mask_id})}
    dims = int((~special).sum(-1)[0])
    gen = torch.Generator().manual_seed(seed)
    sizes, chain = mlm.ordering_scores(model, ids, orderings, gen, batch_size, **kwargs)  # (P, D, N), (P, N)
    per_ordering = sizes.sum(1)  # (P, N): the cumulative score of each ordering
    size_curve = sizes.mean(0).numpy()  # (D, N)
    per_seq = {
        "cumulative": per_ordering.mean(0).numpy(),
        "orderings_chain": chain.mean(0).numpy(),
        "pll": mlm.pseudo_log_likelihood(model, ids, batch_size, **kwargs).numpy(),
    }
    if with_left_to_right:
        per_seq["left_to_right"] = left_to_right(model, ids, batch_size, special, mask_id, vocab).numpy()
    for r in fixed_rates:
        per_seq[f"fixed_{r:g}"] = dims * size_curve[rate_to_size(dims, r) - 1]
    curve = np.stack([size_curve[rate_to_size(dims, r) - 1] for r in rates])  # (R, N)
    per_seq["authors_area"] = -area.authors_area(curve, step, dims)  # as a log p(x) estimate (negated)
    per_seq["consistent_area"], ends = area.cumulative_from_curve(rates, curve, dims)
    out = {
        "dims": dims,
        "sequences": int(ids.shape[0]),
        "orderings": orderings,
        "rates": list(rates),
        "curve": curve.mean(1).tolist(),
        "size_curve": size_curve.mean(1).tolist(),
        "grid_has_both_ends": ends,
        # inconsistency: spread across orderings of the chain rule (zero for one joint distribution),
        # and of the per-ordering cumulative score (MC spread even for a consistent model)
        "ordering_spread": float(chain.std(0, unbiased=True).mean()),
        "cumulative_ordering_spread": float(per_ordering.std(0, unbiased=True).mean()),
        # the Monte Carlo (ordering) part of the error of the mean over sequences; for one sequence,
        # the only error there is
        "cumulative_mc_sem": float(
            (per_ordering.var(0, unbiased=True) / orderings).mean().sqrt() / math.sqrt(ids.shape[0])
        ),
        "orderings_chain_mc_sem": float(
            (chain.var(0, unbiased=True) / orderings).mean().sqrt() / math.sqrt(ids.shape[0])
        ),
    }
    for name, values in per_seq.items():
        out[f"{name}_mean"], out[f"{name}_sem"] = area.mean_sem(values)
    # the area's bias read off the same S values as the consistent estimate: the Monte Carlo noise of
    # the two is shared, so the paired difference has a far smaller error than either's gap to log p
    paired = per_seq["authors_area"] - per_seq["consistent_area"]
    out["authors_minus_consistent_mean"], out["authors_minus_consistent_sem"] = area.mean_sem(paired)
    out["area"] = -out["authors_area_mean"]  # the authors' positive area, per sequence
    out["cumulative_per_token"] = out["cumulative_mean"] / dims  # nats per token
    out["cumulative_bits_per_char"] = -out["cumulative_per_token"] / LN2  # one token per character
    if exact is not None:
        ex = exact.numpy()
        out["exact_lml_mean"], out["exact_lml_sem"] = area.mean_sem(ex)
        for name, values in per_seq.items():
            out[f"{name}_minus_exact_mean"], out[f"{name}_minus_exact_sem"] = area.mean_sem(values - ex)
        out["diff_mean"] = out["cumulative_minus_exact_mean"]
        out["diff_sem"] = out["cumulative_minus_exact_sem"]
        out["z"] = out["diff_mean"] / out["diff_sem"] if out["diff_sem"] > 0 else 0.0
    return out


def evaluate(
    model: mlm.LogitsFn,
    ids: torch.Tensor,
    tokenizer,
    eval_cfg,
    seed: int,
    exact: torch.Tensor | None = None,
    collator: bool = True,
) -> dict:
    """`score_model` on the tokens layout, plus the HF-collator curve (the authors' pipeline)."""
    rates = mlm.rate_grid(eval_cfg.rate_step)
    out = score_model(
        model,
        ids,
        eval_cfg.orderings,
        rates,
        eval_cfg.rate_step,
        list(eval_cfg.fixed_rates),
        seed,
        exact=exact,
    )
    out["log_vocab"] = math.log(len(tokenizer))
    if collator:
        curve = mlm.collator_curve(model, tokenizer, ids, rates, eval_cfg.collator_batch_size, seed)
        out["collator_curve"] = curve
        out["collator_area"] = mlm.integrate_area(curve, out["dims"], eval_cfg.rate_step)
    return out


class CurveLog:
    """Training curves to the run's logger as they happen: one monotonic step across the run's cells
    (wandb needs one), with the cell's own step logged beside its values and declared as their x axis
    (`define_x`, wandb's define_metric), so each curve plots against its own training step."""

    def __init__(self, run):
        self.run, self.step, self.named = run, 0, set()

    def __call__(self, name: str, step: int, values: dict) -> None:
        if name not in self.named:
            self.named.add(name)
            self.run.logger.define_x(f"train/{name}/step", f"train/{name}/*")
        self.step += 1
        scalars = {f"train/{name}/{k}": v for k, v in {"step": step, **values}.items()}
        self.run.logger.log(scalars, step=self.step)


def bert_cell_fn(
    make_model: Callable[[int], torch.nn.Module],
    objective: str | None,
    train_seed: int,
    sample_train,
    train_cfg,
    eval_ids: torch.Tensor,
    tokenizer,
    eval_cfg,
    eval_seed: int,
    exact=None,
    curves: CurveLog | None = None,
    collator: bool = True,
) -> Callable[[], dict]:
    """A cell that trains (unless objective is None: the random-init baseline) and then scores."""

    def cell() -> dict:
        model = make_model(train_seed)
        losses, train_s = [], 0.0
        name = f"bert_{objective}/seed{train_seed}"
        if objective is not None:
            start = time.perf_counter()
            bar = tqdm(
                total=train_cfg.steps,
                desc=f"tiny BERT ({objective}, seed {train_seed})",
                leave=False,
                mininterval=5,
            )

            def progress(step: int, loss: float) -> None:
                bar.update()
                if curves is not None:
                    curves(name, step, {"loss": loss})

            losses = mlm.train_mlm(
                model,
                sample_train,
                objective,
                train_cfg.steps,
                train_cfg.batch_size,
                train_cfg.lr,
                train_cfg.warmup,
                torch.Generator().manual_seed(train_seed),
                progress=progress,
            )
            bar.close()
            train_s = time.perf_counter() - start
        model.eval()
        metrics = evaluate(mlm.bert_logits(model), eval_ids, tokenizer, eval_cfg, eval_seed, exact, collator)
        tail = losses[-max(1, len(losses) // 10) :]
        return {
            **metrics,
            "train_s": train_s,
            "train_loss_last": float(np.mean(tail)) if tail else None,
            "train_loss_trace": losses[:: max(1, len(losses) // 100)],
            "parameters": sum(p.numel() for p in model.parameters()),
        }

    return cell


def bert_jobs(
    base: dict,
    make_model: Callable[[int], torch.nn.Module],
    sample_train,
    train_cfg,
    eval_ids: torch.Tensor,
    tokenizer,
    eval_cfg,
    eval_seed: int,
    exact=None,
    curves: CurveLog | None = None,
) -> list[tuple[dict, Callable[[], dict]]]:
    """(cell, computation) of every tiny BERT: the random-init baseline once (nothing is trained), then
    each objective per training seed; the collator curve (the authors' pipeline) for the first seed only."""
    from omegaconf import OmegaConf

    train = {k: v for k, v in OmegaConf.to_container(train_cfg).items() if k not in ("objectives", "seeds")}
    first = train_cfg.seeds[0]

    def job(cell: dict, objective: str | None, seed: int, collator: bool):
        fn = bert_cell_fn(
            make_model,
            objective,
            seed,
            sample_train,
            train_cfg,
            eval_ids,
            tokenizer,
            eval_cfg,
            eval_seed,
            exact,
            curves,
            collator=collator,
        )
        return cell, fn

    jobs = []
    for s in train_cfg.seeds:
        if s == first:
            jobs.append(job({**base, "model": "random_bert", "train_seed": s}, None, s, True))
        for objective in train_cfg.objectives:
            cell = {**base, "model": f"bert_{objective}", "train": train, "train_seed": s}
            jobs.append(job(cell, objective, s, s == first))
    return jobs


def run_jobs(run, jobs: list[tuple[dict, Callable[[], dict]]]) -> None:
    """Each cell through the run's result store (finished cells are skipped), logged as it ends."""
    for cell, fn in jobs:
        log.info("scoring %s (seed %s)", cell["model"], cell.get("train_seed", "-"))
        log_row(cell["model"], run.results.run_cell(cell, fn))


def log_row(name: str, row: dict | None) -> None:
    if row is None:
        log.info("%s: already done (or being computed by another run)", name)
    elif row["status"] != "ok":
        log.error("%s failed: %s", name, row["error"])
    else:
        m = row["metrics"]
        log.info(
            "%s: cumulative %.2f ± %.2f nats/seq (exact %s), PLL %.2f, ordering spread %.3f, area %.1f",
            name,
            m["cumulative_mean"],
            m["cumulative_sem"],
            m.get("exact_lml_mean"),
            m["pll_mean"],
            m["ordering_spread"],
            m["area"],
        )
