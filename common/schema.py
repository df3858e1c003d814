"""The fields every run has, as plain dataclasses: the base of each command's typed schema.

No hydra or omegaconf here: a paper's schema subclasses `RunConfig` and is registered with hydra by
`common.config`, while the GPU-node commands (no hydra there) build the same dataclasses from their
YAML files through `common.plain_config`. `MISSING` is omegaconf's marker for a required value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

MISSING = "???"  # omegaconf's literal for "must be set"; a plain string keeps this module dependency-free


@dataclass
class PathsConfig:
    """Directories of a run; conf/paths/default.yaml gives their values (the one place they are set)."""

    root: str = MISSING
    results_dir: str = MISSING
    figures_dir: str = MISSING
    data_dir: str = MISSING


@dataclass
class LoggerConfig:
    """The experiment logger: metrics.jsonl always, wandb on request."""

    backend: str = "jsonl"  # none | jsonl | wandb (wandb also writes jsonl)
    wandb_project: str = "mlsys-repro"
    wandb_entity: Optional[str] = None
    wandb_mode: Optional[str] = None  # None: $WANDB_MODE, else offline
    wandb_group: Optional[str] = None  # None: <paper>/<experiment>/<scale>, shared by a sweep's runs
    wandb_tags: list[str] = field(default_factory=list)


@dataclass
class ScaleConfig:
    """Which sizes a run uses: this machine's, or the paper's on a cluster."""

    name: str = "smoke"  # smoke (this machine) | paper (the paper's settings, for a cluster)


@dataclass
class JobConfig:
    """How `make jobs-<paper>` renders this experiment as a SLURM batch script (jobs/render.py)."""

    profile: str = "cpu"  # a conf/slurm/profiles.yaml entry: cpu | gpu1 | gpu4
    array: Optional[str] = None  # a list-valued key to split into one array task per value
    require_env: list[str] = field(default_factory=list)  # variables the job refuses to start without


@dataclass
class RunConfig:
    """Fields every command has; a command's schema subclasses it.

    `paper` is the package a run belongs to: a paper's slug, or a shared package (serving, hardware,
    jobs) for the commands of common/ and jobs/.
    """

    paper: str = MISSING
    experiment: str = MISSING
    seed: int = 0
    torch_threads: int = 2
    result_dir: str = "${paths.results_dir}/${paper}/${experiment}/${scale.name}"
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    job: JobConfig = field(default_factory=JobConfig)


@dataclass
class FiguresConfig(RunConfig):
    """A paper's figures command: reads the paper's result stores at one scale, draws, logs the figures."""

    results: str = "${paths.results_dir}/${paper}"  # <results>/<experiment>/<scale>/ is read, never written
    out: str = "${paths.figures_dir}/${paper}"  # figures are written as <name>_<scale>.png here


def module_of(config_name: str) -> str:
    """The module that runs a config: conf/<paper>/<exp>.yaml -> papers.<paper>.<exp>; any other
    conf/<a>/<b>.yaml -> <a>.<b> (conf/common/report.yaml -> common.report)."""
    from common.repo import PAPERS

    parts = config_name.split("/")
    return ".".join(["papers", *parts] if parts[0] in PAPERS else parts)
