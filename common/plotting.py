"""One headless figure style for all papers; figures are written as PNG (READMEs) and PDF (papers)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never needs a display; set before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402

from common.runinfo import REPO_ROOT  # noqa: E402

STYLE = {
    "figure.figsize": (5.0, 3.4),
    "figure.dpi": 120,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.markersize": 4,
    "text.usetex": False,  # no LaTeX on clusters or CI
}


def figures_dir(paper: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root is not None else REPO_ROOT / "figures" / paper


def use_style() -> None:
    plt.rcParams.update(STYLE)


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    use_style()
    return plt.subplots(nrows, ncols, **kwargs)


def save(fig, paper: str, name: str, out_dir: str | os.PathLike | None = None,
         source: str | None = None) -> list[Path]:
    """Write `<name>.png` and `<name>.pdf`; `source` (hardware, data) is stamped in a corner."""
    out = figures_dir(paper, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if source:
        # below the axes (bbox "tight" grows to hold it), so it never covers tick labels
        fig.text(0.99, -0.01, source, ha="right", va="top", fontsize=6, color="0.4")
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp.{ext}")
        fig.savefig(tmp)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths
