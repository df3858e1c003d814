"""The hydra layer: registering schemas, composing configs, and running a task as a hydra app.

Each command declares its settings as a dataclass (subclassing `common.schema.RunConfig`) and
registers it with `register_schema`; its YAML (conf/<paper>/<experiment>.yaml) names that schema first
in its defaults, so a misspelt key or a wrong type fails at compose time with the key named.
`common.app.entrypoint` turns a task `fn(cfg, run)` into the command; this module is what it imports
once hydra is needed, so importing a command (or asking for its --help) stays cheap.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from common import run as run_mod
from common.errors import EXIT_BAD_INPUT, BadInput
from common.repo import CONF_DIR, PAPERS, REPO_ROOT
from common.runinfo import scrub
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
def compose(
    config_name: str,
    overrides: list[str] | None = None,
    config_dir: str | os.PathLike = CONF_DIR,
    hydra_config: bool = False,
) -> DictConfig:
    """Compose a config the way the entry point would (for tests, notebooks and tools)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name="compose"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=hydra_config
        )


def experiment_configs(papers: tuple[str, ...] = PAPERS) -> list[str]:
    """Every command config of the papers: conf/<paper>/<name>.yaml (sub-folders hold groups)."""
    return sorted(f"{p.parent.name}/{p.stem}" for paper in papers for p in (CONF_DIR / paper).glob("*.yaml"))


# ---- validating and running --------------------------------------------------------------------
def validate(cfg: DictConfig) -> dict:
    """The config as plain data, checked key by key against its schema (common.validation); BadInput
    names the first bad key. Returns the resolved data."""
    from common.validation import build

    missing = _missing(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise BadInput(f"{missing[0]}: a value is required (give {missing[0]}=...)")
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # noqa: BLE001 - a bad interpolation is bad input
        raise BadInput(f"config: {' '.join(str(err).split())}") from None
    schema = OmegaConf.get_type(cfg)
    if schema is not None and dataclasses.is_dataclass(schema):
        build(schema, resolved)
    return resolved


def composing_error(err: Exception) -> BadInput:
    """Hydra's and omegaconf's several-line messages as one line that starts with the key."""
    cause = err.__cause__
    key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
    if key and "not in" in str(cause).splitlines()[0]:
        return BadInput(f"{key}: not a key of this config")
    if key:
        return BadInput(f"{key}: {str(cause).splitlines()[0]}")
    text = str(err)
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        return BadInput(f"{group}: no option {option!r} (choices: {', '.join(options)})")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return BadInput("; ".join(lines[:3]))


def _missing(data, prefix: str = "") -> list[str]:
    """Keys whose value is still omegaconf's '???', without resolving anything."""
    if isinstance(data, dict):
        return [k for key, value in data.items() for k in _missing(value, f"{prefix}{key}.")]
    if isinstance(data, list):
        return [k for i, value in enumerate(data) for k in _missing(value, f"{prefix[:-1]}[{i}].")]
    return [prefix[:-1]] if data == "???" else []


def preflight(config_name: str, config_dir: str | os.PathLike, argv: list[str]) -> None:
    """Compose and validate a command's config before hydra makes its run directory: bad input is one
    line naming the key, exit 2, nothing written."""
    try:
        try:
            cfg = compose(config_name, argv, config_dir)
        except Exception as err:  # noqa: BLE001 - hydra's errors, and omegaconf's own (an AssertionError
            raise composing_error(err) from None  # for an override under a null node) are bad input
        validate(cfg)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def run_task(task: Callable[[DictConfig, run_mod.Run], Any], cfg: DictConfig, run_dir: Path) -> Any:
    """Run a task in `run_dir`: validation, artefacts, logging, results, and the exit-status contract."""
    created = run_mod.owns(run_dir)
    try:
        resolved = validate(cfg)
    except BadInput as err:
        run_mod.discard(run_dir, created)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    written = OmegaConf.to_yaml(OmegaConf.create(scrub(OmegaConf.to_container(cfg, resolve=False))))
    return run_mod.execute(task, cfg, run_dir, resolved, written, created)


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
