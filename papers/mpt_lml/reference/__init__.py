"""The authors' BERT masking-rate curves (bert_mpt_curves.csv; provenance in README.md here).

Read from this package, never from a shared folder, so a clone carries what it compares against.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from papers.mpt_lml.mlm import integrate_area

CURVES = Path(__file__).with_name("bert_mpt_curves.csv")
AUTHORS_DIMS = 512  # the authors' integrate_area(losses, dimensions=512): their chunk length
AUTHORS_STEP = 0.01  # their rate grid np.arange(0, 1, 0.01)


def authors_curves() -> pd.DataFrame:
    """dataset, model (pretrained | random), masking_rate, neg_eval_loss (NaN at rate 0)."""
    return pd.read_csv(CURVES)


def authors_areas() -> dict[str, dict[str, float]]:
    """{model: {dataset: area}} by the authors' Riemann sum, -sum(neg_eval_loss) * 0.01 * 512."""
    curves = authors_curves()
    out: dict[str, dict[str, float]] = {}
    for (model, dataset), group in curves.groupby(["model", "dataset"]):
        out.setdefault(model, {})[dataset] = integrate_area(
            group["neg_eval_loss"].to_numpy(), AUTHORS_DIMS, AUTHORS_STEP
        )
    return out
