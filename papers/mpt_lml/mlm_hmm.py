"""Masked LMs on a hidden-Markov language, where the exact log-likelihood is known.

The exact forward-backward predictor, random-init tiny BERTs and tiny BERTs trained with uniform-rate
(cumulative MPT) or fixed-15% masking, once per training seed, are scored by the same code: the
cumulative score, the chain rule along random orderings (its spread measures inconsistency), PLL and
its variants, fixed-rate scores, and the authors' Riemann area beside a consistent estimate from the
same rate curve. The exact predictor must recover log p(x) within Monte Carlo error, with zero
ordering spread; the gap of every other score to the exact LML is its bias. This is the paper's BERT
experiment (exp_4_llm_fig*.py) moved to a language whose LML we can compute.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/mlm_hmm")
def main(cfg, run):
    import torch
    from omegaconf import OmegaConf

    from papers.mpt_lml.hmm import HMM, HMMPredictor
    from papers.mpt_lml.mlm import tiny_bert
    from papers.mpt_lml.mlm_experiment import CurveLog, bert_cell_fn, evaluate, log_row
    from papers.mpt_lml.summary import write_summary
    from papers.mpt_lml.tokens import OFFSET, make_tokenizer, wrap

    started = time.perf_counter()
    hmm = HMM.random(cfg.hidden_states, cfg.symbols, cfg.concentration, cfg.seed)
    tokenizer = make_tokenizer([f"s{i}" for i in range(cfg.symbols)])
    vocab = len(tokenizer)
    eval_ids = wrap(hmm.sample(cfg.eval.sequences, cfg.seq_len, torch.Generator().manual_seed(cfg.seed + 1)))
    exact = hmm.log_likelihood(eval_ids[:, 1:-1] - OFFSET)
    log.info(
        "HMM: %d states, %d symbols, length %d; exact log p(x) %.3f nats/sequence on %d sequences",
        cfg.hidden_states,
        cfg.symbols,
        cfg.seq_len,
        float(exact.mean()),
        len(exact),
    )

    def sample_train(n, gen):  # fresh sequences every step: the language, not a finite corpus
        return wrap(hmm.sample(n, cfg.seq_len, gen))

    def make_model(seed):
        return tiny_bert(vocab, cfg.seq_len + 2, seed=seed, **cfg.bert)

    base = {
        "hidden_states": cfg.hidden_states,
        "symbols": cfg.symbols,
        "seq_len": cfg.seq_len,
        "concentration": cfg.concentration,
        "seed": cfg.seed,
        "eval": OmegaConf.to_container(cfg.eval),
    }
    bert = {"bert": OmegaConf.to_container(cfg.bert)}
    train = {k: v for k, v in OmegaConf.to_container(cfg.train).items() if k not in ("objectives", "seeds")}
    curves = CurveLog(run)
    jobs = [
        (
            {**base, "model": "exact_hmm"},
            lambda: evaluate(HMMPredictor(hmm, vocab), eval_ids, tokenizer, cfg.eval, cfg.seed + 1, exact),
        )
    ]
    first = cfg.train.seeds[0]
    # the random-init baseline once (nothing is trained); the collator curve (the authors' pipeline) for
    # the first seed only
    for s in cfg.train.seeds:
        if s == first:
            jobs.append(
                (
                    {**base, **bert, "model": "random_bert", "train_seed": s},
                    bert_cell_fn(
                        make_model,
                        None,
                        s,
                        sample_train,
                        cfg.train,
                        eval_ids,
                        tokenizer,
                        cfg.eval,
                        cfg.seed + 1,
                        exact,
                        curves,
                        collator=True,
                    ),
                )
            )
        for objective in cfg.train.objectives:
            cell = {**base, **bert, "model": f"bert_{objective}", "train": train, "train_seed": s}
            jobs.append(
                (
                    cell,
                    bert_cell_fn(
                        make_model,
                        objective,
                        s,
                        sample_train,
                        cfg.train,
                        eval_ids,
                        tokenizer,
                        cfg.eval,
                        cfg.seed + 1,
                        exact,
                        curves,
                        collator=s == first,
                    ),
                )
            )
    for cell, fn in jobs:
        log.info("scoring %s (seed %s)", cell["model"], cell.get("train_seed", "-"))
        log_row(cell["model"], run.results.run_cell(cell, fn))
    return write_summary(run, [c for c, _ in jobs], started, exact_lml_mean=float(exact.mean()))


if __name__ == "__main__":
    main()
