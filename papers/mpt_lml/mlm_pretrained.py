"""A real pretrained masked LM scored offline: AntiBERTy (Ruffolo et al. 2021; a BertForMaskedLM,
8 layers, hidden 512, trained on 558M natural antibody sequences; its checkpoint ships in the
antiberty 0.1.3 wheel) on real antibody variable domains, or any local BertForMaskedLM directory.

For each sequence: the cumulative MPT score over every mask size, from `orderings` random orderings
(nested masks of every size from each; the mean over orderings with its standard error), the chain
rule along the same orderings (its spread across orderings is zero for conditionals from one joint
distribution: the inconsistency measure), the pseudo-log-likelihood (PLL, every residue masked
alone), fixed-rate scores D * S(round(r D)), the authors' Riemann area and the consistent estimate
from the rate curve. Log-probabilities are renormalised over the vocabulary's non-special tokens (the
20 residues for AntiBERTy), as AntiBERTy's own pseudo_log_likelihood does.

The model directory needs config.json, its weights and a vocab.txt (one token per line, the five
BERT specials among them; AntiBERTy's sits one level up, in trained_models/). Each character of a
sequence is one token, found by its line in vocab.txt: AntiBERTy's BertTokenizer maps every residue
to [UNK] under transformers 5, so no tokenizer is used.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

from common.app import entrypoint
from common.errors import BadInput
from papers.mpt_lml import config  # noqa: F401 - registers the schemas

log = logging.getLogger(__name__)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def model_files(model: str) -> tuple[Path, Path]:
    """(checkpoint directory, vocab.txt) of `model`: 'antiberty' or a local directory."""
    if model == "antiberty":
        spec = importlib.util.find_spec("antiberty")  # located, not imported: its runner needs transformers 4
        if spec is None or not spec.submodule_search_locations:
            raise BadInput(
                "model: 'antiberty' needs the antiberty wheel (pip install --no-deps antiberty==0.1.3)"
            )
        root = Path(list(spec.submodule_search_locations)[0]) / "trained_models"
        return root / "AntiBERTy_md_smooth", root / "vocab.txt"
    path = Path(model)
    if not path.is_dir():
        raise BadInput(
            f"model: {model!r} is not 'antiberty' or a local model directory (hub names: mlm_glue)"
        )
    return path, path / "vocab.txt"


def read_vocab(vocab_file: Path) -> list[str]:
    if not vocab_file.is_file():
        raise BadInput(f"model: no vocab.txt at {vocab_file}")
    vocab = vocab_file.read_text().splitlines()
    missing = [t for t in SPECIALS if t not in vocab]
    if missing:
        raise BadInput(f"model: vocab.txt lacks the special token(s) {missing}")
    return vocab


def encode(sequences: list[str], vocab: list[str]):
    """Token ids [CLS] s_1 .. s_L [SEP] per sequence (a list of (1, L + 2) tensors); an unknown
    character is bad input naming the sequence."""
    import torch

    index = {t: i for i, t in enumerate(vocab)}
    out = []
    for i, seq in enumerate(sequences):
        unknown = sorted({c for c in seq if c not in index or c in SPECIALS})
        if unknown:
            raise BadInput(f"sequences[{i}]: {''.join(unknown)!r} not in the model's vocabulary")
        ids = [index["[CLS]"], *(index[c] for c in seq), index["[SEP]"]]
        out.append(torch.tensor([ids]))
    return out


@entrypoint("mpt_lml/mlm_pretrained")
def main(cfg, run):
    started = time.perf_counter()
    checkpoint, vocab_file = model_files(cfg.model)
    vocab = read_vocab(vocab_file)
    encoded = encode(list(cfg.sequences), vocab)  # bad sequences are refused before the model loads

    import torch
    from transformers import BertForMaskedLM

    from papers.mpt_lml.mlm import bert_logits, rate_grid
    from papers.mpt_lml.mlm_experiment import log_row, score_model
    from papers.mpt_lml.summary import write_summary

    try:
        model = BertForMaskedLM.from_pretrained(str(checkpoint)).to(cfg.device).eval()
    except (OSError, ValueError) as err:
        raise BadInput(
            f"model: cannot load a BertForMaskedLM from {checkpoint} ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from None
    if model.config.vocab_size != len(vocab):
        raise BadInput(f"model: vocab.txt has {len(vocab)} tokens, the model {model.config.vocab_size}")
    special_ids = [vocab.index(t) for t in SPECIALS]
    symbols = torch.tensor([i for i in range(len(vocab)) if i not in special_ids])
    forward = bert_logits(model, vocab.index("[PAD]"))

    def on_device(ids):
        return forward(ids.to(cfg.device)).float().cpu()

    rates = rate_grid(cfg.rate_step)
    log.info(
        "%s: %s parameters, vocabulary %d; %d sequences",
        cfg.model,
        f"{sum(p.numel() for p in model.parameters()):,}",
        len(vocab),
        len(encoded),
    )
    cells = []
    for i, (name, seq, ids) in enumerate(zip(cfg.names, cfg.sequences, encoded)):
        cell = {
            "model": cfg.model,
            "name": name,
            "sequence": seq,
            "orderings": cfg.orderings,
            "rate_step": cfg.rate_step,
            "fixed_rates": list(cfg.fixed_rates),
            "seed": cfg.seed,
        }
        cells.append(cell)

        def measure(ids=ids, i=i):
            special = torch.isin(ids, torch.tensor(special_ids))
            out = score_model(
                on_device,
                ids,
                cfg.orderings,
                rates,
                cfg.rate_step,
                list(cfg.fixed_rates),
                cfg.seed * 1000 + i,
                cfg.batch_size,
                special,
                vocab.index("[MASK]"),
                symbols,
                with_left_to_right=False,
            )
            out["log_vocab"] = float(torch.log(torch.tensor(float(len(symbols)))))
            return out

        log_row(f"{cfg.model} {name}", run.results.run_cell(cell, measure))
    return write_summary(run, cells, started, parameters=sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
