"""Masked LMs on a hidden-Markov language, where the exact log-likelihood is known.

The exact forward-backward predictor, a random-init tiny BERT and tiny BERTs trained with
uniform-rate (cumulative MPT) or fixed-15% masking are scored by the same code. The exact
predictor's cumulative score must recover log p(x) within Monte Carlo error; a random BERT's curve
sits near -log V; training lowers the area. This is the paper's BERT experiment (exp_4_llm_fig*.py)
moved to a language whose LML we can compute, so the areas can be read against the truth.
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import OmegaConf

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas
from papers.mpt_lml.hmm import HMM, HMMPredictor
from papers.mpt_lml.mlm import tiny_bert
from papers.mpt_lml.mlm_experiment import bert_cell_fn, check_objectives, evaluate, log_row
from papers.mpt_lml.summary import write_summary
from papers.mpt_lml.tokens import OFFSET, make_tokenizer, wrap

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/mlm_hmm")
def main(cfg, run):
    started = time.perf_counter()
    check_objectives(cfg.train.objectives)
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

    def make_model():
        return tiny_bert(vocab, cfg.seq_len + 2, seed=cfg.seed, **cfg.bert)

    base = {
        "hidden_states": cfg.hidden_states,
        "symbols": cfg.symbols,
        "seq_len": cfg.seq_len,
        "concentration": cfg.concentration,
        "seed": cfg.seed,
        "eval": OmegaConf.to_container(cfg.eval),
    }
    bert = {"bert": OmegaConf.to_container(cfg.bert)}
    jobs = [
        (
            {**base, "model": "exact_hmm"},
            lambda: evaluate(HMMPredictor(hmm, vocab), eval_ids, tokenizer, cfg.eval, cfg.seed + 1, exact),
        ),
        (
            {**base, **bert, "model": "random_bert"},
            bert_cell_fn(
                make_model, None, sample_train, cfg.train, eval_ids, tokenizer, cfg.eval, cfg.seed, exact
            ),
        ),
    ]
    for objective in cfg.train.objectives:
        cell = {**base, **bert, "model": f"bert_{objective}", "train": OmegaConf.to_container(cfg.train)}
        jobs.append(
            (
                cell,
                bert_cell_fn(
                    make_model,
                    objective,
                    sample_train,
                    cfg.train,
                    eval_ids,
                    tokenizer,
                    cfg.eval,
                    cfg.seed,
                    exact,
                ),
            )
        )
    for cell, fn in jobs:
        log.info("scoring %s", cell["model"])
        log_row(cell["model"], run.results.run_cell(cell, fn))
    return write_summary(run, [c for c, _ in jobs], started, exact_lml_mean=float(exact.mean()))


if __name__ == "__main__":
    main()
