"""Which of a user's overrides reach which command, decided from the commands' own configs.

`make reproduce-<paper> ARGS="scale=paper engine=vllm"` gives one list of hydra overrides to a chain of
commands that do not share every key (only the serving steps have `engine`). Each override goes to
every command whose composed config has its key or config group; one that no command takes is an
error naming it, and every command is composed with its overrides before anything runs, so a typo
fails in seconds with exit 2 instead of after the first step.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from common.errors import BadInput
from common.schema import module_of


@dataclass
class App:
    """One command to run: a config name (conf/<name>.yaml) and overrides fixed by its caller."""

    config: str
    overrides: list[str] = field(default_factory=list)

    @property
    def module(self) -> str:
        return module_of(self.config)

    def label(self) -> str:
        return " ".join([self.config, *self.overrides])


def split(argv: list[str], own: set[str]) -> tuple[list[str], list[str]]:
    """(the caller's own `key=value` items, the rest); own keys are top-level names."""
    mine, rest = [], []
    for item in argv:
        (mine if item.split("=", 1)[0] in own else rest).append(item)
    return mine, rest


def load(app: App):
    """Import the command (cheap: commands import nothing heavy at module level) and register its schema."""
    try:
        module = importlib.import_module(app.module)
    except ModuleNotFoundError as err:
        raise BadInput(f"conf/{app.config}.yaml: its module {app.module} does not exist ({err})") from None
    main = getattr(module, "main", None)
    if getattr(main, "config_name", None) != app.config:
        raise BadInput(f"{app.module} has no entry point for conf/{app.config}.yaml")
    if getattr(main, "schema", None) is not None:
        from common.config import register_schema

        register_schema(app.config, main.schema)
    return main


def compose_app(app: App, overrides: list[str]):
    """The app's config with its own and the given overrides, hydra's node included."""
    from hydra.errors import HydraException

    from common.config import compose

    load(app)
    try:
        return compose(app.config, [*app.overrides, *overrides], hydra_config=True)
    except HydraException as err:
        raise BadInput(f"{app.label()}: {' '.join(str(err).split())}") from None


def takes(cfg, override: str) -> bool:
    """Does a composed config have the key, or the config group, that `override` sets?"""
    from omegaconf import OmegaConf

    key = override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]
    if key in cfg.hydra.runtime.choices:
        return True
    parent = key.rsplit(".", 1)[0] if override.startswith("+") and "." in key else key
    return OmegaConf.select(cfg, parent, default=_ABSENT) is not _ABSENT


_ABSENT = object()


def route(apps: list[App], overrides: list[str]) -> list[list[str]]:
    """Each app's share of `overrides`, checked: every override reaches an app, every app composes."""
    bases = [compose_app(app, []) for app in apps]
    shares: list[list[str]] = [[] for _ in apps]
    for override in overrides:
        if "=" not in override:
            raise BadInput(f"{override!r} is not an override (key=value or group=option)")
        hit = [i for i, cfg in enumerate(bases) if takes(cfg, override)]
        if not hit:
            raise BadInput(f"{override!r}: no step has this key ({', '.join(a.config for a in apps)})")
        for i in hit:
            shares[i].append(override)
    for app, share in zip(apps, shares):
        compose_app(app, share)  # the value is checked against the schema too
    return shares
