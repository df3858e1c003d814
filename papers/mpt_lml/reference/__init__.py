"""The authors' BERT masking-rate curves (bert_mpt_curves.csv; provenance in README.md here).

Read from this package, never from a shared folder, so a clone carries what it compares against.
"""

from __future__ import annotations

import math
from pathlib import Path

CURVES = Path(__file__).with_name("bert_mpt_curves.csv")
AUTHORS_DIMS = 512  # the authors' integrate_area(losses, dimensions=512): their chunk length
AUTHORS_STEP = 0.01  # their rate grid np.arange(0, 1, 0.01)


def authors_curves():
    """dataset, model (pretrained | random), masking_rate, neg_eval_loss (NaN at rate 0)."""
    import pandas as pd

    return pd.read_csv(CURVES)


def authors_areas() -> dict[str, dict[str, float]]:
    """{model: {dataset: area}} by the authors' Riemann sum, -sum(neg_eval_loss) * 0.01 * 512."""
    from papers.mpt_lml.mlm import integrate_area

    curves = authors_curves()
    out: dict[str, dict[str, float]] = {}
    for (model, dataset), group in curves.groupby(["model", "dataset"]):
        out.setdefault(model, {})[dataset] = integrate_area(
            group["neg_eval_loss"].to_numpy(), AUTHORS_DIMS, AUTHORS_STEP
        )
    return out


AUTHORS_HARDWARE = "an NVIDIA A100 under LSF (the authors' job_gpu.sh)"


def authors_per_token() -> dict[str, dict[str, dict[str, float]]]:
    """{model: {dataset: {nats_per_token, bits_per_char}}}: the mean over the authors' 99 rates of
    their masked-token loss (their area divided by 512 tokens and by the grid's 0.99). Their inputs
    were split into single characters before WordPiece, so a token is a character (bits per
    character = nats per token / ln 2)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (model, dataset), group in authors_curves().groupby(["model", "dataset"]):
        nats = -float(group["neg_eval_loss"].dropna().mean())
        out.setdefault(model, {})[dataset] = {"nats_per_token": nats, "bits_per_char": nats / math.log(2)}
    return out
