"""`entrypoint`: a task `fn(cfg, run)` becomes the command `python -m <module> [key=value ...]`.

Importing this module (and so a command's module) loads neither hydra nor torch: `--help` answers
from the composed config before any heavy import, and hydra itself is imported only when the command
runs. Commands that must also run where hydra is absent (the GPU-node check) pass `plain=True` and
their schema: there the same YAML files are read by `common.plain_config`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from common.repo import CONF_DIR


def _hydra_available() -> bool:
    try:
        import hydra  # noqa: F401
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return True


def entrypoint(
    config_name: str,
    config_dir: str | os.PathLike = CONF_DIR,
    schema: type | None = None,
    plain: bool = False,
    x_axis: str | None = None,
) -> Callable:
    """Decorate `task(cfg, run)`; the result is the `main()` of `python -m <module>`.

    `schema` registers the command's dataclass where its module cannot (a hydra-free module);
    `plain=True` runs through `common.plain_config` when hydra is not installed; `x_axis` names the
    cell parameter wandb plots every metric against (`batch_size`, `masks_per_size`).
    """

    def decorate(task: Callable[[Any, Any], Any]) -> Callable[[], None]:
        task.x_axis = x_axis

        @functools.wraps(task)
        def main() -> None:
            argv = sys.argv[1:]
            if plain and not _hydra_available():
                from common.plain_config import plain_main

                return plain_main(task, config_name, config_dir, schema, argv)
            if schema is not None:
                from common.config import register_schema

                register_schema(config_name, schema)
            if "--help" in argv or "-h" in argv:
                from common.help import print_help

                raise SystemExit(print_help(task, config_name, config_dir, argv))
            from common.config import hydra_main, preflight

            if not any(a.startswith("-") for a in argv):  # not a multirun or a hydra flag (--cfg, ...)
                preflight(config_name, config_dir, argv)
            hydra_main(task, config_name, config_dir)

        main.task = task
        main.config_name = config_name
        main.schema = schema
        return main

    return decorate
