"""One headless figure style for all papers; figures are written as PNG (READMEs) and PDF (papers).

A paper's figures command draws into a `FigureOut`: one folder and one scale, so every file name
carries its scale (`fig2_throughput_smoke.png`) and a `scale=paper` run never overwrites the smoke
figures a README shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never needs a display; set before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402

from common.atomic import write_atomic  # noqa: E402

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


@dataclass(frozen=True)
class FigureOut:
    """Where a figures run writes: `dir/<name>_<scale>.<ext>`."""

    dir: Path
    scale: str

    def path(self, name: str, ext: str) -> Path:
        """`dir/<name>_<scale>.<ext>`: the scale in the name keeps a paper-scale run off the smoke figures."""
        return Path(self.dir) / f"{name}_{self.scale}.{ext}"

    def write_text(self, name: str, ext: str, text: str) -> Path:
        """A table or note beside the figures, written atomically."""
        return write_atomic(self.path(name, ext), text)


def use_style() -> None:
    """Apply the shared style to matplotlib's global settings."""
    plt.rcParams.update(STYLE)


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs):
    """`plt.subplots` in the shared style."""
    use_style()
    return plt.subplots(nrows, ncols, **kwargs)


def save(fig, name: str, out: FigureOut, source: str | None = None) -> list[Path]:
    """Write `<name>_<scale>.png` and `.pdf`; `source` (hardware, data) is stamped below the axes.

    A visible panel with nothing drawn in it is refused (ValueError naming it): a missing result shows
    as a note in a table or a panel turned off, never as an empty frame a reader takes for a zero."""
    empty = [
        ax.get_title() or f"panel {i}" for i, ax in enumerate(fig.axes) if ax.axison and not ax.has_data()
    ]
    if empty:
        plt.close(fig)
        raise ValueError(f"figure {name}: empty panel(s) {', '.join(repr(t) for t in empty)}")
    Path(out.dir).mkdir(parents=True, exist_ok=True)
    if source:
        # below the axes (bbox "tight" grows to hold it), so it never covers tick labels
        fig.text(0.99, -0.01, source, ha="right", va="top", fontsize=6, color="0.4")
    paths = []
    for ext in ("png", "pdf"):
        path = out.path(name, ext)
        tmp = path.with_name(f".{path.name}.tmp.{ext}")  # hidden: never read as a figure
        # no creation date in the PDF, so the same results give the same bytes
        fig.savefig(tmp, metadata={"CreationDate": None} if ext == "pdf" else None)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths


def publish(run, paths: list[Path], scale: str) -> None:
    """Log a figures run's PNGs to its experiment logger as `figures/<name>` (the scale dropped, so
    wandb shows one figure's versions side by side and the wandb Report finds it by name)."""
    for path in paths:
        if path.suffix == ".png":
            run.logger.figure(f"figures/{path.stem.removesuffix('_' + scale)}", path)
