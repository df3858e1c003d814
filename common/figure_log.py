"""Log a paper's regenerated figures as one run of the experiment logger, beside its sweeps' runs.

figures.py only reads saved results and runs outside hydra, so it never sees `logger=wandb`. Each
`reproduce.sh` therefore ends with this step, given the overrides its experiments got: with
`logger=wandb` every figure becomes an image of a `<paper>/figures/<scale>` run in the same project
(offline unless `logger.wandb_mode=online`), which the wandb Report of `make report-<paper>` shows; with
the default jsonl logger the run's metrics.jsonl lists the figure files it logged.

    python -m common.figure_log <paper> [override ...]
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import OmegaConf

from common import runinfo
from common.config import PAPERS, BadInput, compose, open_run_logger

LOGGER_GROUPS = ("logger", "paths", "scale")  # overrides of this step; the rest are the experiments'


def figure_keys(figures_dir: Path) -> dict[str, Path]:
    """Every PNG under figures_dir by the media key it is logged under: stable across reruns, so wandb
    shows one figure's versions side by side and the Report finds them by name."""
    return {"figures/" + p.relative_to(figures_dir).with_suffix("").as_posix(): p
            for p in sorted(figures_dir.rglob("*.png"))}


def _group(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0].split(".", 1)[0]


def log_figures(paper: str, overrides: list[str]) -> Path | None:
    """Log figures/<paper>/**.png; returns the run dir, or None where `logger=none`."""
    if paper not in PAPERS:
        raise BadInput(f"unknown paper {paper!r} (choices: {', '.join(PAPERS)})")
    try:
        cfg = compose("base", [o for o in overrides if _group(o) in LOGGER_GROUPS])
    except HydraException as err:
        raise BadInput(str(err).replace("\n", " ")) from None
    if cfg.logger.backend == "none":
        return None
    figures_dir = Path(cfg.paths.figures_dir) / paper
    figures = figure_keys(figures_dir)
    if not figures:
        raise BadInput(f"no figures under {figures_dir}: run `make figures-{paper}` first")
    scale = cfg.scale.name
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")  # as hydra names experiment runs
    run_dir = Path(cfg.paths.results_dir) / paper / "figures" / scale / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    info = runinfo.collect({"run_dir": str(run_dir), "figures_dir": str(figures_dir)})
    config = {"paper": paper, "experiment": "figures", "scale": scale, "figures_dir": str(figures_dir)}
    logger = open_run_logger(run_dir, OmegaConf.to_container(cfg.logger), config, info, paper, "figures",
                             scale)
    status = 1
    try:
        for key, path in figures.items():
            logger.figure(key, path)
        status = 0
    finally:
        logger.finish(status)
    print(f"figure_log: {len(figures)} figures of {paper} logged ({cfg.logger.backend}) -> {run_dir}")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        log_figures(argv[0], argv[1:])
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
