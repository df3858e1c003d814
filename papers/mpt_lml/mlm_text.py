"""Masked LMs on a local English text corpus, character-level, against the authors' BERT curves.

Random-init tiny BERTs and tiny BERTs trained with uniform-rate (cumulative MPT) or fixed-15%
masking, once per training seed, scored as in mlm_hmm (cumulative score, ordering spread, PLL and its
variants, fixed-rate scores, the authors' area and the consistent estimate) and over masking rates
1-99% by the HF collator (80/10/10, the authors' pipeline). The paper's counterpart is pretrained vs
random bert-base on GLUE, also at character level (exp_4_llm_fig2.py); their curves are in
reference/ and are compared per token (nats per token, bits per character), since V, D and the
models differ.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)


@entrypoint("mpt_lml/mlm_text")
def main(cfg, run):
    import torch
    from omegaconf import OmegaConf

    from papers.mpt_lml.corpus import char_sequences, read_corpus
    from papers.mpt_lml.mlm import tiny_bert
    from papers.mpt_lml.mlm_experiment import CurveLog, bert_jobs, run_jobs
    from papers.mpt_lml.reference import authors_areas, authors_per_token
    from papers.mpt_lml.summary import write_summary
    from papers.mpt_lml.tokens import make_tokenizer

    started = time.perf_counter()
    text = read_corpus(list(cfg.corpus))
    chars, ids = char_sequences(text, cfg.seq_len)
    tokenizer = make_tokenizer(chars)
    n_eval = max(1, round(cfg.eval_fraction * len(ids)))
    train_ids, eval_ids = ids[:-n_eval], ids[-n_eval:][: cfg.eval.sequences]  # held-out tail of the text
    if len(train_ids) < 1 or len(eval_ids) < 2:
        from common.errors import BadInput

        raise BadInput(
            f"eval_fraction: leaves {len(train_ids)} train and {len(eval_ids)} eval sequences of "
            f"{cfg.seq_len} characters (need >= 1 and >= 2)"
        )
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

    def make_model(seed):
        return tiny_bert(len(tokenizer), cfg.seq_len + 2, seed=seed, **cfg.bert)

    base = {
        "corpus": list(cfg.corpus),
        "characters": len(text),
        "seq_len": cfg.seq_len,
        "eval_fraction": cfg.eval_fraction,
        "seed": cfg.seed,
        "eval": OmegaConf.to_container(cfg.eval),
        "bert": OmegaConf.to_container(cfg.bert),
    }
    jobs = bert_jobs(
        base,
        make_model,
        sample_train,
        cfg.train,
        eval_ids,
        tokenizer,
        cfg.eval,
        cfg.seed,
        None,
        CurveLog(run),
    )
    run_jobs(run, jobs)
    return write_summary(
        run,
        [c for c, _ in jobs],
        started,
        vocab=len(tokenizer),
        authors_areas=authors_areas(),
        authors_per_token=authors_per_token(),
    )


if __name__ == "__main__":
    main()
