"""Masked LMs on a local English text corpus, character-level, against the authors' BERT curves.

A random-init tiny BERT and tiny BERTs trained with uniform-rate (cumulative MPT) or fixed-15%
masking, scored over masking rates 1-99% by the exact-count scorer and by the HF collator (80/10/10,
the authors' pipeline). The paper's counterpart is pretrained vs random bert-base on GLUE, also at
character level (exp_4_llm_fig2.py); their curves are in reference/ and are summarised here with
the same area so the shapes can be compared (the sizes cannot: V, D and the models differ).
"""

from __future__ import annotations

import logging
import time

import torch
from omegaconf import OmegaConf

from common.app import entrypoint
from common.errors import BadInput
from papers.mpt_lml import config  # noqa: F401 - registers the schemas
from papers.mpt_lml.corpus import char_sequences, read_corpus
from papers.mpt_lml.mlm import tiny_bert
from papers.mpt_lml.mlm_experiment import bert_cell_fn, check_objectives, log_row
from papers.mpt_lml.reference import authors_areas
from papers.mpt_lml.summary import write_summary
from papers.mpt_lml.tokens import make_tokenizer

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/mlm_text")
def main(cfg, run):
    started = time.perf_counter()
    check_objectives(cfg.train.objectives)
    if not 0 < cfg.eval_fraction < 1:
        raise BadInput(f"eval_fraction must lie in (0, 1), got {cfg.eval_fraction}")
    text = read_corpus(list(cfg.corpus))
    chars, ids = char_sequences(text, cfg.seq_len)
    tokenizer = make_tokenizer(chars)
    n_eval = max(1, round(cfg.eval_fraction * len(ids)))
    train_ids, eval_ids = ids[:-n_eval], ids[-n_eval:][: cfg.eval.sequences]  # held-out tail of the text
    log.info(
        "corpus: %d characters, %d distinct; %d train and %d eval sequences of %d",
        len(text),
        len(chars),
        len(train_ids),
        len(eval_ids),
        cfg.seq_len,
    )

    def sample_train(n, gen):
        return train_ids[torch.randint(0, len(train_ids), (n,), generator=gen)]

    def make_model():
        return tiny_bert(len(tokenizer), cfg.seq_len + 2, seed=cfg.seed, **cfg.bert)

    base = {
        "corpus": list(cfg.corpus),
        "characters": len(text),
        "seq_len": cfg.seq_len,
        "eval_fraction": cfg.eval_fraction,
        "seed": cfg.seed,
        "eval": OmegaConf.to_container(cfg.eval),
        "bert": OmegaConf.to_container(cfg.bert),
    }
    jobs = [
        (
            {**base, "model": "random_bert"},
            bert_cell_fn(make_model, None, sample_train, cfg.train, eval_ids, tokenizer, cfg.eval, cfg.seed),
        )
    ]
    for objective in cfg.train.objectives:
        cell = {**base, "model": f"bert_{objective}", "train": OmegaConf.to_container(cfg.train)}
        jobs.append(
            (
                cell,
                bert_cell_fn(
                    make_model, objective, sample_train, cfg.train, eval_ids, tokenizer, cfg.eval, cfg.seed
                ),
            )
        )
    for cell, fn in jobs:
        log.info("scoring %s", cell["model"])
        log_row(cell["model"], run.results.run_cell(cell, fn))
    return write_summary(
        run, [c for c, _ in jobs], started, vocab=len(tokenizer), authors_areas=authors_areas()
    )


if __name__ == "__main__":
    main()
