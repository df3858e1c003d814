"""bert-base-uncased (pretrained and random-init) on GLUE test sets: the authors' BERT experiment.

For a cluster with hub access (or a warm HF cache); offline it stops with a clear error, exit 2.
Preprocessing follows the authors' data/<dataset>.py: every text field of every test example is
split into characters (" ".join(text)), tokenised with its [CLS]/[SEP], all concatenated and cut
into `chunk_len`-token chunks. Each model gets the authors' curve (HF collator, 80/10/10, batches of
8; their neg_eval_loss) and ours (exact-count masks, all [MASK], 1/m), over rates 1%-99%, with the
authors' Riemann area; reference/ holds their numbers for the same cells.
"""

from __future__ import annotations

import logging
import time

from common.app import entrypoint
from common.errors import BadInput
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)
TEXT_FIELDS = {
    "ax": ("premise", "hypothesis"),
    "cola": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qnli": ("question", "sentence"),
    "sst2": ("sentence",),
    "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
}
HUB_HINT = (
    "needs the Hugging Face hub (or its files in the HF cache): run where the hub is reachable "
    "with HF_HUB_OFFLINE=0, or pre-download on a login node"
)


def load_model(name: str):
    """(tokenizer, pretrained BertForMaskedLM) from the hub or the HF cache."""
    from transformers import AutoTokenizer, BertForMaskedLM

    try:
        return AutoTokenizer.from_pretrained(name), BertForMaskedLM.from_pretrained(name)
    except OSError as err:
        raise BadInput(
            f"model_name: {name!r} is not available here ({err.__class__.__name__}); {HUB_HINT}"
        ) from None


def glue_texts(task: str) -> list[str]:
    """Every text field of every GLUE test example of `task`, as separate strings (as the authors)."""
    import datasets

    if task not in TEXT_FIELDS:
        raise BadInput(f"tasks: unknown GLUE task {task!r}; known: {', '.join(sorted(TEXT_FIELDS))}")
    try:
        split = datasets.load_dataset("glue", task, split="test")
    except OSError as err:
        raise BadInput(
            f"tasks: GLUE {task!r} is not available here ({err.__class__.__name__}); {HUB_HINT}"
        ) from None
    return [row[f] for row in split for f in TEXT_FIELDS[task]]


def char_chunks(texts: list[str], tokenizer, chunk_len: int, max_chunks: int):
    """The authors' test set: character-split texts, concatenated, cut into chunks; the last one is
    padded. Returns (ids (n, chunk_len), special (n, chunk_len)); max_chunks <= 0 keeps all."""
    import torch

    stream: list[int] = []
    for text in texts:
        stream += tokenizer(" ".join(text))["input_ids"]
    rows = [stream[i : i + chunk_len] for i in range(0, len(stream), chunk_len)]
    rows = rows[:max_chunks] if max_chunks > 0 else rows
    ids = torch.full((len(rows), chunk_len), tokenizer.pad_token_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    return ids, special


@entrypoint("mpt_lml/mlm_glue")
def main(cfg, run):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from papers.mpt_lml.mlm import bert_logits, collator_curve, integrate_area, rate_curve, rate_grid
    from papers.mpt_lml.reference import authors_areas
    from papers.mpt_lml.summary import write_summary

    started = time.perf_counter()
    tokenizer, pretrained = load_model(cfg.model_name)
    data = {
        task: char_chunks(glue_texts(task), tokenizer, cfg.chunk_len, cfg.max_chunks) for task in cfg.tasks
    }
    torch.manual_seed(cfg.seed)
    models = {"pretrained": pretrained, "random": BertForMaskedLM(BertConfig(vocab_size=len(tokenizer)))}
    rates = rate_grid(cfg.rate_step)
    cells = []
    for kind, model in models.items():
        model.to(cfg.device).eval()
        logits = bert_logits(model, tokenizer.pad_token_id)

        def on_device(ids, logits=logits):
            return logits(ids.to(cfg.device)).float().cpu()

        for task, (ids, special) in data.items():
            cell = {
                "model_name": cfg.model_name,
                "model": kind,
                "task": task,
                "chunk_len": cfg.chunk_len,
                "max_chunks": cfg.max_chunks,
                "rate_step": cfg.rate_step,
                "masks_per_rate": cfg.masks_per_rate,
                "seed": cfg.seed,
            }
            cells.append(cell)

            def measure(ids=ids, special=special, forward=on_device):
                ours = rate_curve(
                    forward,
                    ids,
                    rates,
                    cfg.masks_per_rate,
                    torch.Generator().manual_seed(cfg.seed),
                    cfg.batch_size,
                    special,
                    tokenizer.mask_token_id,
                ).mean(1)
                theirs = collator_curve(
                    forward, tokenizer, ids, rates, cfg.collator_batch_size, 42, cfg.batch_size, special
                )
                return {
                    "rates": rates,
                    "curve": ours.tolist(),
                    "collator_curve": theirs,
                    "chunks": len(ids),
                    "area": integrate_area(ours.tolist(), cfg.chunk_len, cfg.rate_step),
                    "collator_area": integrate_area(theirs, cfg.chunk_len, cfg.rate_step),
                }

            row = run.results.run_cell(cell, measure)
            if row is not None and row["status"] == "ok":
                log.info(
                    "%s BERT on %s: area %.1f (collator %.1f)",
                    kind,
                    task,
                    row["metrics"]["area"],
                    row["metrics"]["collator_area"],
                )
    return write_summary(run, cells, started, authors_areas=authors_areas())


if __name__ == "__main__":
    main()
