"""`--help` of every command: what it does, its own config groups, and its config, composed.

Hydra's own help lists every group under conf/ (all four papers'); a user asking one experiment wants
that experiment's choices only. The text comes from the command's module docstring, so what the help
says and what the code says live in one place.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from common.errors import EXIT_BAD_INPUT
from common.schema import module_of

HIDDEN = ("hydra/", "schema_")  # hydra's internals and the schemas are not choices a user makes
SHOWN = ("hydra/launcher",)


def _groups(choices: dict, loader) -> list[tuple[str, str, list[str]]]:
    """(group, chosen option, every option) for the groups a user may switch."""
    out = []
    for group, chosen in choices.items():
        name = group.split("@")[0]
        if group not in SHOWN and (name.startswith(HIDDEN) or group.endswith("@_global_")):
            continue  # paper-scale files follow `scale`; they are not chosen by name
        options = sorted(loader.get_group_options(name))
        out.append((group, str(chosen), options))
    return out


def help_text(task: Callable, config_name: str, config_dir: str | Path, overrides: list[str]) -> str:
    """The help page; composing errors propagate (the caller reports them)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name="help"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        groups = _groups(dict(cfg.hydra.runtime.choices), GlobalHydra.instance().config_loader())
    job = f"{cfg.paper}-{cfg.experiment}"
    doc = inspect.getdoc(sys.modules[task.__module__]) or inspect.getdoc(task) or ""
    lines = [
        f"usage: python -m {module_of(config_name)} [key=value ...] [group=option ...]",
        f"job: {job}   config: conf/{config_name}.yaml",
        "",
        doc.strip(),
        "",
        "config groups (group=option; * marks the current choice):",
    ]
    width = max((len(g) for g, _, _ in groups), default=0)
    for group, chosen, options in groups:
        shown = ", ".join(f"{o}*" if o == chosen else o for o in options)
        lines.append(f"  {group:<{width}}  {shown}")
    body = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    lines += [
        "",
        "config (override any key as key=value; ??? must be given):",
        OmegaConf.to_yaml(OmegaConf.create(body)).rstrip(),
    ]
    return "\n".join(lines) + "\n"


def print_help(task: Callable, config_name: str, config_dir: str | Path, argv: list[str]) -> int:
    """Print the help of a command; its overrides (e.g. scale=paper) shape the config shown."""
    overrides = [a for a in argv if a not in ("--help", "-h")]
    try:
        text = help_text(task, config_name, config_dir, overrides)
    except Exception as err:  # noqa: BLE001 - a bad override: hydra's message names the key
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(text)
    return 0
