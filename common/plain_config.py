"""The GPU-node path of a command: its YAML files read without hydra into the same dataclass schema.

The GPU nodes' python has torch and transformers (so PyYAML) but neither hydra nor omegaconf. A command
that must run there (`make gpu-check`) keeps one schema and one set of config files; where hydra is
absent, this module reads them with the subset of hydra's rules they use: a defaults list of
`/base` (the shared groups), `_self_` and `<group>@<key>: <option>` entries of groups beside the config,
`${a.b}` and `${repo_root:}` interpolations, and `key=value` / `group=option` overrides. Anything else
is refused, naming it, so the two readers cannot silently disagree (tests compare them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from common.errors import EXIT_BAD_INPUT, BadInput
from common.repo import REPO_ROOT
from common.runinfo import scrub
from common.validation import build

INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
SHARED = {"paths": "default", "logger": "jsonl", "scale": "smoke"}  # what conf/base.yaml selects


def _yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise BadInput(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping")
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def _parse_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) if text != "" else ""


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise BadInput(f"override {dotted}: {key!r} is not a group of keys")
        node = node[key]
    if leaf not in node:
        raise BadInput(f"override {dotted}: no such key")
    node[leaf] = value


def _resolve(data: Any, root: dict) -> Any:
    if isinstance(data, dict):
        return {k: _resolve(v, root) for k, v in data.items()}
    if isinstance(data, list):
        return [_resolve(v, root) for v in data]
    if not isinstance(data, str) or "${" not in data:
        return data

    def lookup(match: re.Match) -> str:
        expr = match.group(1)
        if expr == "repo_root:":
            return str(REPO_ROOT)
        node: Any = root
        for key in expr.split("."):
            if not isinstance(node, dict) or key not in node:
                raise BadInput(f"interpolation ${{{expr}}}: no such key")
            node = node[key]
        return str(_resolve(node, root))

    whole = INTERPOLATION.fullmatch(data)
    if whole and whole.group(1) != "repo_root:":
        node: Any = root
        for key in whole.group(1).split("."):
            node = node[key] if isinstance(node, dict) and key in node else None
        if node is not None and not isinstance(node, str):
            return _resolve(node, root)  # a whole-value reference keeps its type
    return INTERPOLATION.sub(lookup, data)


def load(config_name: str, config_dir: str | Path, overrides: list[str]) -> dict:
    """The config as plain data, interpolations resolved."""
    config_dir = Path(config_dir)
    path = config_dir / f"{config_name}.yaml"
    own = _yaml(path)
    folder = path.parent
    choices = dict(SHARED)
    local: dict[str, tuple[str, str]] = {}  # group -> (key it lands at, option)
    for entry in own.pop("defaults", []):
        if entry in ("_self_", "/base") or (isinstance(entry, str) and entry.startswith("/schema_")):
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise BadInput(f"{path}: defaults entry {entry!r} is not supported without hydra")
        (spec, option), = entry.items()
        group, _, key = spec.partition("@")
        if group.startswith("/") or not key:
            raise BadInput(f"{path}: defaults entry {entry!r} is not supported without hydra")
        local[group] = (key, str(option))
    values = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or name.startswith(("+", "~")):
            raise BadInput(f"override {item!r}: expected key=value")
        if name in choices:
            choices[name] = value
        elif name in local:
            local[name] = (local[name][0], value)
        else:
            values[name] = _parse_value(value)
    data: dict = {}
    for group, option in choices.items():
        data[group] = _yaml(config_dir / group / f"{option}.yaml")
    for group, (key, option) in local.items():
        data[key] = _yaml(folder / group / f"{option}.yaml")
    data = _merge(data, own)
    for dotted, value in values.items():
        _set(data, dotted, value)
    return _resolve(data, data)


def plain_main(task, config_name: str, config_dir: str | Path, schema: type, argv: list[str]) -> None:
    """`main()` of a command where hydra is absent: same files, same schema, same run artefacts."""
    import time

    import yaml

    from common import run as run_mod

    if "--help" in argv or "-h" in argv:
        print(f"usage: python -m {task.__module__} [key=value ...]  (hydra absent: plain config reader)")
        print(sys.modules[task.__module__].__doc__ or "")
        raise SystemExit(0)
    try:
        data = load(config_name, config_dir, argv)
        cfg = build(schema, data)  # every key checked, as for hydra apps
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    run_dir = Path(cfg.result_dir) / "runs" / time.strftime("%Y-%m-%d_%H-%M-%S")
    created = run_mod.owns(run_dir)
    run_mod.execute(task, cfg, run_dir, data, yaml.safe_dump(scrub(data), sort_keys=False), created)
