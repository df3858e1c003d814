"""What the masked-LM experiments share: train tiny BERTs, score every model the same way.

Each model (a random-init BERT, BERTs trained with uniform-rate or fixed-rate masking, and any exact
predictor) is one result cell. Sequences all have D maskable tokens, so S(m) is measured once for
every m = 1..D (`masks_per_size` masks each); the curve over rates is read off it at
m = round(rate * D), its exact-size sum estimates log p(x), and the authors' Riemann area is taken
over the rate grid. The HF-collator curve (80/10/10) is measured beside it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from common.errors import BadInput
from papers.mpt_lml import mlm
from papers.mpt_lml.masks import rate_to_size
from papers.mpt_lml.tokens import is_special

log = logging.getLogger(__name__)
OBJECTIVES = ("uniform", "fixed")


def check_objectives(objectives) -> None:
    bad = [o for o in objectives if o not in OBJECTIVES]
    if bad:
        raise BadInput(f"train.objectives: unknown {bad}; choose from {list(OBJECTIVES)}")


def evaluate(
    model: mlm.LogitsFn, ids: torch.Tensor, tokenizer, eval_cfg, seed: int, exact: torch.Tensor | None = None
) -> dict:
    """The MPT curve, its areas and the collator curve of one model on `ids` (nats per sequence)."""
    gen = torch.Generator().manual_seed(seed)
    dims = int((~is_special(ids)).sum(-1)[0])
    sizes = mlm.cumulative_scores(model, ids, eval_cfg.masks_per_size, gen)  # (D, N)
    per_seq = sizes.sum(0)
    rates = mlm.rate_grid(eval_cfg.rate_step)
    curve = [float(sizes[rate_to_size(dims, r) - 1].mean()) for r in rates]
    collator = mlm.collator_curve(model, tokenizer, ids, rates, eval_cfg.collator_batch_size, seed)
    out = {
        "dims": dims,
        "rates": rates,
        "curve": curve,
        "size_curve": sizes.mean(1).tolist(),
        "cumulative_mean": float(per_seq.mean()),
        "cumulative_sem": float(per_seq.std() / math.sqrt(len(per_seq))),
        "area": mlm.integrate_area(curve, dims, eval_cfg.rate_step),
        "collator_curve": collator,
        "collator_area": mlm.integrate_area(collator, dims, eval_cfg.rate_step),
        "log_vocab": math.log(len(tokenizer)),
    }
    if exact is not None:  # the per-sequence difference, so the MC error is the difference's
        diff = per_seq - exact
        sem = float(diff.std() / math.sqrt(len(diff)))
        out.update(
            {
                "exact_lml_mean": float(exact.mean()),
                "diff_mean": float(diff.mean()),
                "diff_sem": sem,
                "z": float(diff.mean()) / sem if sem > 0 else 0.0,
            }
        )
    return out


def bert_cell_fn(
    make_model: Callable[[], torch.nn.Module],
    objective: str | None,
    sample_train,
    train_cfg,
    eval_ids: torch.Tensor,
    tokenizer,
    eval_cfg,
    seed: int,
    exact=None,
) -> Callable[[], dict]:
    """A cell that trains (unless objective is None: the random-init baseline) and then scores."""

    def cell() -> dict:
        model = make_model()
        losses, train_s = [], 0.0
        if objective is not None:
            start = time.perf_counter()
            bar = tqdm(total=train_cfg.steps, desc=f"tiny BERT ({objective})", leave=False, mininterval=5)
            losses = mlm.train_mlm(
                model,
                sample_train,
                objective,
                train_cfg.steps,
                train_cfg.batch_size,
                train_cfg.lr,
                train_cfg.warmup,
                torch.Generator().manual_seed(seed),
                progress=lambda _: bar.update(),
            )
            bar.close()
            train_s = time.perf_counter() - start
        model.eval()
        metrics = evaluate(mlm.bert_logits(model), eval_ids, tokenizer, eval_cfg, seed + 1, exact)
        tail = losses[-max(1, len(losses) // 10) :]
        return {
            **metrics,
            "train_s": train_s,
            "train_loss_last": float(np.mean(tail)) if tail else None,
            "train_loss_trace": losses[:: max(1, len(losses) // 100)],
            "parameters": sum(p.numel() for p in model.parameters()),
        }

    return cell


def log_row(name: str, row: dict | None) -> None:
    if row is None:
        log.info("%s: already done", name)
    elif row["status"] != "ok":
        log.error("%s failed: %s", name, row["error"])
    else:
        m = row["metrics"]
        log.info(
            "%s: cumulative %.2f nats/seq (exact %s), area %.1f, collator area %.1f, S(15%%) %.3f",
            name,
            m["cumulative_mean"],
            m.get("exact_lml_mean"),
            m["area"],
            m["collator_area"],
            m["curve"][min(len(m["curve"]) - 1, round(0.15 / m["rates"][0]) - 1)],
        )
