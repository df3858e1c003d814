"""What happens around every command's task, with or without hydra: the run directory, its artefacts
(config, runinfo, log), the experiment logger, the result store, seeding and the exit-status contract.

`common.config.run_task` calls `execute` for hydra apps; `common.plain_config` does for the GPU-node
commands, whose python has no hydra. Bad input (`BadInput`) exits 2 and removes the run dir it made.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import runinfo
from common.atomic import write_atomic
from common.errors import EXIT_BAD_INPUT, BadInput
from common.logging import ExperimentLogger, setup_logging
from common.results import ResultStore

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What a task gets besides its config."""

    cfg: Any  # a DictConfig (hydra apps) or the schema's dataclass (plain_config)
    dir: Path
    results: ResultStore
    logger: ExperimentLogger
    info: dict

    @property
    def result_dir(self) -> Path:
        """The config's result_dir: where this run's result store and result files go."""
        return Path(self.cfg.result_dir)


def seed_everything(seed: int, threads: int) -> None:
    """Seed python, numpy and torch (where imported or importable) and set torch's thread count."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def open_run_logger(
    run_dir: Path, logger_cfg: dict, config: dict, info: dict, paper: str, experiment: str, scale: str
) -> ExperimentLogger:
    """Write the run's runinfo.json and open its experiment logger. Every run of one
    <paper>/<experiment>/<scale> joins the same wandb group, which is how a sweep's runs (and the
    paper's figures run) are found together."""
    write_atomic(run_dir / "runinfo.json", json.dumps(info, indent=2, default=str) + "\n")
    group = f"{paper}/{experiment}/{scale}"
    return ExperimentLogger.from_config(
        logger_cfg, run_dir, {**config, "runinfo": info}, group=group, name=f"{group}/{run_dir.name}"
    )


def owns(run_dir: Path) -> bool:
    """True when the run dir is new (hydra makes it and its .hydra/ before the task: still ours)."""
    return not run_dir.exists() or {p.name for p in run_dir.iterdir()} <= {".hydra"}


def execute(
    task: Callable[[Any, Run], Any], cfg: Any, run_dir: Path, resolved: dict, config_text: str, created: bool
) -> Any:
    """Run `task(cfg, run)` in `run_dir`. `resolved` is the config as plain data (interpolations
    resolved), `config_text` the config as written by the user's tools (config.yaml)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed, cfg.torch_threads)
    setup_logging(run_dir)
    scale = cfg.scale.name
    info = runinfo.collect(
        {
            "run_dir": str(run_dir),
            "result_dir": str(cfg.result_dir),
            "paper": cfg.paper,
            "experiment": cfg.experiment,
            "scale": scale,
        }
    )
    write_atomic(run_dir / "config.yaml", config_text)
    import yaml

    clean = runinfo.scrub(resolved)
    write_atomic(run_dir / "config_resolved.yaml", yaml.safe_dump(clean, sort_keys=False))
    logger = open_run_logger(run_dir, resolved["logger"], clean, info, cfg.paper, cfg.experiment, scale)
    result_dir = Path(cfg.result_dir)
    run = Run(
        cfg=cfg,
        dir=run_dir,
        logger=logger,
        info=info,
        results=ResultStore(result_dir / "results.jsonl", on_append=logger.log_cell),
    )
    log.info(
        "%s/%s at scale=%s on %s (torch threads %s); results -> %s",
        cfg.paper,
        cfg.experiment,
        scale,
        info["hardware"]["device"],
        info["hardware"]["torch_threads"],
        result_dir,
    )
    if getattr(task, "x_axis", None):
        logger.define_x(task.x_axis)
    exit_code = 1
    try:
        out = task(cfg, run)
        exit_code = report_cells(run.results)
        if exit_code:
            raise SystemExit(exit_code)
        return out
    except BadInput as err:
        exit_code = EXIT_BAD_INPUT
        log.error("bad input: %s", err)
        logger.finish(exit_code)
        discard(run_dir, created)
        raise SystemExit(EXIT_BAD_INPUT) from None
    finally:
        if logger.backends:
            logger.log_results(
                run.results.appended, result_files(result_dir), f"{cfg.paper}-{cfg.experiment}-{scale}", clean
            )
        logger.finish(exit_code)


def result_files(result_dir: Path) -> dict[str, Path]:
    """The files a run's readers want (store, summaries, tables), by name: the result dir's top level,
    without run dirs and hidden files (temporaries, claims)."""
    if not result_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(result_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}


def report_cells(results: ResultStore) -> int:
    """One line on the cells this run computed: a run whose every cell failed exits 1 (so SLURM says
    FAILED and a pipeline stops); a partly failed run says how many and where to look."""
    rows = results.appended
    failed = [r for r in rows if r["status"] != "ok"]
    if rows and len(failed) == len(rows):
        log.error(
            "every cell of this run failed (%d of %d); first error: %s; rows in %s",
            len(failed),
            len(rows),
            failed[0].get("error"),
            results.path,
        )
        return 1
    if failed:
        log.warning("%d of %d cells failed; their errors are in %s", len(failed), len(rows), results.path)
    if results.claimed_elsewhere:
        log.info(
            "%d cells were being computed by another run and were left to it", len(results.claimed_elsewhere)
        )
    return 0


def discard(run_dir: Path, created: bool) -> None:
    """Remove a run dir this run made, so bad input leaves nothing half-written."""
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "baseFilename", "").startswith(str(run_dir)):
            handler.close()
            logging.getLogger().removeHandler(handler)
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
