"""Hydra plumbing shared by every entry point: typed schemas, run directories, run artefacts.

Each paper declares its experiment configs as dataclasses and registers them with `register_schema`;
the experiment's YAML (conf/<paper>/<experiment>.yaml) names that schema first in its defaults, so a
misspelt key or a wrong type fails at compose time with the key named. `entrypoint` turns a task
`fn(cfg, run)` into a hydra app that writes config.yaml, config_resolved.yaml and runinfo.json,
opens the result store and the experiment logger, and exits with status 2 on bad input, leaving no
run directory behind.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf

from common import runinfo
from common.logging import ExperimentLogger, setup_logging
from common.results import ResultStore

REPO_ROOT = runinfo.REPO_ROOT
CONF_DIR = REPO_ROOT / "conf"
PAPERS = ("batching", "slm_energy", "frida", "mpt_lml")
EXIT_BAD_INPUT = 2
log = logging.getLogger(__name__)

if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


class BadInput(ValueError):
    """Input the user can fix (a key, a value, a file): reported plainly, exit status 2."""


# ---- schemas ------------------------------------------------------------------------------------
@dataclass
class PathsConfig:
    root: str = MISSING
    results_dir: str = MISSING
    figures_dir: str = MISSING
    data_dir: str = MISSING


@dataclass
class LoggerConfig:
    backend: str = "jsonl"  # none | jsonl | wandb (wandb also writes jsonl)
    wandb_project: str = "mlsys-repro"
    wandb_entity: Optional[str] = None
    wandb_mode: Optional[str] = None  # None: $WANDB_MODE, else offline
    wandb_group: Optional[str] = None  # None: <paper>/<experiment>/<scale>, shared by a sweep's runs
    wandb_tags: list[str] = field(default_factory=list)


@dataclass
class ScaleConfig:
    name: str = "smoke"  # smoke (this machine) | paper (the paper's settings, for a cluster)


@dataclass
class JobConfig:
    """How `make jobs-<paper>` renders this experiment as a SLURM batch script (jobs/render.py)."""

    profile: str = "cpu"  # a jobs/profiles.yaml entry: cpu | gpu1 | gpu4
    array: Optional[str] = None  # a list-valued key to split into one array task per value
    require_env: list[str] = field(default_factory=list)  # variables the job refuses to start without


@dataclass
class RunConfig:
    """Fields every experiment has; a paper's experiment schema subclasses it."""

    paper: str = MISSING
    experiment: str = MISSING
    seed: int = 0
    torch_threads: int = 2
    result_dir: str = "${paths.results_dir}/${paper}/${experiment}/${scale.name}"
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    job: JobConfig = field(default_factory=JobConfig)


def schema_name(paper: str, experiment: str) -> str:
    return f"schema_{paper}_{experiment}"


def register_schema(paper: str, experiment: str, node: type) -> None:
    """Store an experiment's dataclass so `- /schema_<paper>_<experiment>` in its YAML finds it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=schema_name(paper, experiment), node=node)


# ---- composing ----------------------------------------------------------------------------------
def compose(config_name: str, overrides: list[str] | None = None,
            config_dir: str | os.PathLike = CONF_DIR) -> DictConfig:
    """Compose a config the way the entry point would (for tests, notebooks and tools)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name="compose"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def experiment_configs() -> list[str]:
    """Every experiment config: conf/<paper>/<name>.yaml (sub-folders hold groups, not experiments)."""
    return sorted(f"{p.parent.name}/{p.stem}" for paper in PAPERS
                  for p in (CONF_DIR / paper).glob("*.yaml"))


# ---- running ------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a task gets besides its config."""

    cfg: DictConfig
    dir: Path
    results: ResultStore
    logger: ExperimentLogger
    info: dict

    @property
    def result_dir(self) -> Path:
        return Path(self.cfg.result_dir)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _seed_everything(seed: int, threads: int) -> None:
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


def open_run_logger(run_dir: Path, logger_cfg: dict, config: dict, info: dict, paper: str,
                    experiment: str, scale: str) -> ExperimentLogger:
    """Write the run's runinfo.json and open its experiment logger. Every run of one
    <paper>/<experiment>/<scale> joins the same wandb group, which is how the sweep's runs (and the
    figures run of `common.figure_log`) are found together."""
    write_atomic(run_dir / "runinfo.json", json.dumps(info, indent=2, default=str) + "\n")
    group = f"{paper}/{experiment}/{scale}"
    return ExperimentLogger.from_config(logger_cfg, run_dir, {**config, "runinfo": info}, group=group,
                                        name=f"{group}/{run_dir.name}")


def run_task(task: Callable[[DictConfig, Run], Any], cfg: DictConfig, run_dir: Path) -> Any:
    """Run a task in `run_dir`: artefacts, logging, results, and the exit-status contract."""
    # hydra makes the dir and its .hydra/ before the task starts: that still counts as ours
    created = not run_dir.exists() or {p.name for p in run_dir.iterdir()} <= {".hydra"}
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as err:  # noqa: BLE001 - a missing value or bad interpolation is bad input
        _discard(run_dir, created)
        print(f"error: config: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    _seed_everything(cfg.seed, cfg.torch_threads)
    setup_logging(run_dir)
    info = runinfo.collect({"run_dir": str(run_dir), "result_dir": str(cfg.result_dir),
                            "paper": cfg.paper, "experiment": cfg.experiment,
                            "scale": cfg.scale.name})
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    write_atomic(run_dir / "config_resolved.yaml", OmegaConf.to_yaml(runinfo.scrub(resolved)))
    logger = open_run_logger(run_dir, resolved["logger"], runinfo.scrub(resolved), info,
                             cfg.paper, cfg.experiment, cfg.scale.name)
    result_dir = Path(cfg.result_dir)
    run = Run(cfg=cfg, dir=run_dir, logger=logger, info=info,
              results=ResultStore(result_dir / "results.jsonl", on_append=logger.log_cell))
    log.info("%s/%s at scale=%s on %s (torch threads %s); results -> %s", cfg.paper,
             cfg.experiment, cfg.scale.name, info["hardware"]["device"],
             info["hardware"]["torch_threads"], result_dir)
    exit_code = 1
    try:
        out = task(cfg, run)
        exit_code = 0
        return out
    except BadInput as err:
        exit_code = EXIT_BAD_INPUT
        log.error("bad input: %s", err)
        logger.finish(exit_code)
        _discard(run_dir, created)
        raise SystemExit(EXIT_BAD_INPUT) from None
    finally:
        logger.finish(exit_code)


def _discard(run_dir: Path, created: bool) -> None:
    """Remove a run dir this run made, so bad input leaves nothing half-written."""
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "baseFilename", "").startswith(str(run_dir)):
            handler.close()
            logging.getLogger().removeHandler(handler)
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)


def entrypoint(config_name: str, config_dir: str | os.PathLike = CONF_DIR) -> Callable:
    """Decorate `task(cfg, run)`; the result is a `main()` for `python -m papers.<paper>.<exp>`."""

    def decorate(task: Callable[[DictConfig, Run], Any]) -> Callable[[], None]:
        @functools.wraps(task)
        def main() -> None:
            import hydra
            from hydra.core.hydra_config import HydraConfig

            entered = False

            def hydra_task(cfg: DictConfig) -> Any:
                nonlocal entered
                entered = True
                return run_task(task, cfg, Path(HydraConfig.get().runtime.output_dir))

            app = hydra.main(version_base="1.3", config_path=str(config_dir),
                             config_name=config_name)(hydra_task)
            try:
                app()
            except SystemExit as exc:
                if exc.code not in (0, None) and not entered:
                    # hydra printed why composing failed (the key is named); nothing ran
                    raise SystemExit(EXIT_BAD_INPUT) from None
                raise

        main.task = task
        main.config_name = config_name
        return main

    return decorate
