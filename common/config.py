"""The hydra layer: registering schemas, composing configs, and running a task as a hydra app.

Each command declares its settings as a dataclass (subclassing `common.schema.RunConfig`) and
registers it with `register_schema`; its YAML (conf/<paper>/<experiment>.yaml) names that schema first
in its defaults, so a misspelt key or a wrong type fails at compose time with the key named.
`common.app.entrypoint` turns a task `fn(cfg, run)` into the command; this module is what it imports
once hydra is needed, so importing a command (or asking for its --help) stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common import run as run_mod
from common.errors import EXIT_BAD_INPUT
from common.repo import CONF_DIR, PAPERS, REPO_ROOT
from common.schema import RunConfig  # noqa: F401 - the base every paper's schema subclasses


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("slurm"):
        from common.slurm import profile_value

        OmegaConf.register_new_resolver("slurm", profile_value)


_register_resolvers()


def schema_name(config_name: str) -> str:
    """conf/batching/sweep.yaml names its schema `schema_batching_sweep` first in its defaults."""
    return "schema_" + config_name.replace("/", "_")


def register_schema(config_name: str, node: type) -> None:
    """Store a command's dataclass so `- /schema_<config name with _>` in its YAML finds it."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=schema_name(config_name), node=node)


# ---- composing ----------------------------------------------------------------------------------
def compose(config_name: str, overrides: list[str] | None = None,
            config_dir: str | os.PathLike = CONF_DIR, hydra_config: bool = False) -> DictConfig:
    """Compose a config the way the entry point would (for tests, notebooks and tools)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name="compose"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []),
                             return_hydra_config=hydra_config)


def experiment_configs(papers: tuple[str, ...] = PAPERS) -> list[str]:
    """Every command config of the papers: conf/<paper>/<name>.yaml (sub-folders hold groups)."""
    return sorted(f"{p.parent.name}/{p.stem}" for paper in papers for p in (CONF_DIR / paper).glob("*.yaml"))


# ---- running ------------------------------------------------------------------------------------
def run_task(task: Callable[[DictConfig, run_mod.Run], Any], cfg: DictConfig, run_dir: Path) -> Any:
    """Run a task in `run_dir`: artefacts, logging, results, and the exit-status contract."""
    created = run_mod.owns(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception as err:  # noqa: BLE001 - a missing value or bad interpolation is bad input
        run_mod.discard(run_dir, created)
        print(f"error: config: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    return run_mod.execute(task, cfg, run_dir, resolved, OmegaConf.to_yaml(cfg), created)


def hydra_main(task: Callable, config_name: str, config_dir: str | os.PathLike) -> None:
    """Run `task` as a hydra app; a config that does not compose exits 2 (hydra names the key)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    entered = False

    def hydra_task(cfg: DictConfig) -> Any:
        nonlocal entered
        entered = True
        return run_task(task, cfg, Path(HydraConfig.get().runtime.output_dir))

    app = hydra.main(version_base="1.3", config_path=str(config_dir), config_name=config_name)(hydra_task)
    try:
        app()
    except SystemExit as exc:
        if exc.code not in (0, None) and not entered:
            raise SystemExit(EXIT_BAD_INPUT) from None  # hydra printed why composing failed
        raise
