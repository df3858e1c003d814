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
    from papers.mpt_lml.mlm_experiment import CurveLog, bert_jobs, evaluate, run_jobs
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
    jobs = [
        (
            {**base, "model": "exact_hmm"},
            lambda: evaluate(HMMPredictor(hmm, vocab), eval_ids, tokenizer, cfg.eval, cfg.seed + 1, exact),
        ),
        *bert_jobs(
            {**base, "bert": OmegaConf.to_container(cfg.bert)},
            make_model,
            sample_train,
            cfg.train,
            eval_ids,
            tokenizer,
            cfg.eval,
            cfg.seed + 1,
            exact,
            CurveLog(run),
        ),
    ]
    run_jobs(run, jobs)
    return write_summary(run, [c for c, _ in jobs], started, exact_lml_mean=float(exact.mean()))


if __name__ == "__main__":
    main()
