"""The fields every run has, as plain dataclasses: the base of each command's typed schema.

No hydra or omegaconf here: a paper's schema subclasses `RunConfig` and is registered with hydra by
`common.config`, while the GPU-node commands (no hydra there) build the same dataclasses from their
YAML files through `common.plain_config`. `MISSING` is omegaconf's marker for a required value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

MISSING = "???"  # omegaconf's literal for "must be set"; a plain string keeps this module dependency-free


@dataclass(frozen=True)
class Rule:
    """What values a key accepts beyond its type; `common.validation` checks it before a run starts.

    Bounds apply to a number or to every number of a list; `choices` to a string or every string of a
    list. A key whose every value of its type is fine says why in `free` (a path, a seed, a name), so
    that no key is left unchecked by oversight (tests/test_validation.py fails on a key with no rule).
    """

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    choices: Optional[tuple] = None
    nonempty: bool = False
    free: Optional[str] = None
    allow_nan: bool = False


def spec(default: Any = MISSING, *, factory: Any = None, help: str = "", **rule: Any) -> Any:  # noqa: A002
    """A dataclass field with its rule (and help text, for generated command lines):
    `batch_sizes: list[int] = spec(factory=list, ge=1, nonempty=True)`."""
    metadata = {"rule": Rule(**{k: tuple(v) if k == "choices" else v for k, v in rule.items()}), "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class PathsConfig:
    """Directories of a run; conf/paths/default.yaml gives their values (the one place they are set)."""

    root: str = spec(free="a directory")
    results_dir: str = spec(free="a directory; made when first written")
    figures_dir: str = spec(free="a directory; made when first written")
    data_dir: str = spec(free="a directory; made when first written")


@dataclass
class LoggerConfig:
    """The experiment logger: metrics.jsonl always, wandb on request."""

    backend: str = spec("jsonl", choices=("none", "jsonl", "wandb"))  # wandb also writes jsonl
    wandb_project: str = spec("mlsys-repro", nonempty=True, free="any wandb project name")
    wandb_entity: Optional[str] = spec(None, free="a wandb team; None: the account's default")
    wandb_mode: Optional[str] = spec(None, choices=("online", "offline", "disabled"))  # None: $WANDB_MODE
    wandb_group: Optional[str] = spec(None, free="None: <paper>/<experiment>/<scale>, shared by a sweep")
    wandb_tags: list[str] = spec(factory=list, free="any tags")


@dataclass
class ScaleConfig:
    """Which sizes a run uses: this machine's, or the paper's on a cluster."""

    name: str = spec("smoke", choices=("smoke", "paper"))  # this machine | the paper's settings (a cluster)


@dataclass
class JobConfig:
    """How `make jobs-<paper>` renders this experiment as a SLURM batch script (jobs/render.py)."""

    profile: str = spec("cpu", choices=("cpu", "gpu1", "gpu4"))  # a row of conf/slurm/profiles.yaml
    array: Optional[str] = spec(None, free="a list-valued key, checked when the script is rendered")
    require_env: list[str] = spec(factory=list, free="environment variables the job refuses to start without")


@dataclass
class RunConfig:
    """Fields every command has; a command's schema subclasses it.

    `paper` is the package a run belongs to: a paper's slug, or a shared package (serving, hardware,
    jobs) for the commands of common/ and jobs/.
    """

    paper: str = spec(nonempty=True, free="set by the command's YAML")
    experiment: str = spec(nonempty=True, free="set by the command's YAML")
    seed: int = spec(0, ge=0)
    torch_threads: int = spec(2, ge=1)
    result_dir: str = spec("${paths.results_dir}/${paper}/${experiment}/${scale.name}", free="a directory")
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    job: JobConfig = field(default_factory=JobConfig)


@dataclass
class FiguresConfig(RunConfig):
    """A paper's figures command: reads the paper's result stores at one scale, draws, logs the figures."""

    results: str = spec("${paths.results_dir}/${paper}", free="read (<exp>/<scale>/ below it), never written")
    out: str = spec("${paths.figures_dir}/${paper}", free="a directory")  # <name>_<scale>.png go here


def module_of(config_name: str) -> str:
    """The module that runs a config: conf/<paper>/<exp>.yaml -> papers.<paper>.<exp>; any other
    conf/<a>/<b>.yaml -> <a>.<b> (conf/jobs/render.yaml -> jobs.render)."""
    from common.repo import PAPERS

    parts = config_name.split("/")
    return ".".join(["papers", *parts] if parts[0] in PAPERS else parts)
