"""The GPU-node path of a command: its YAML files read without hydra into the same dataclass schema.

The GPU nodes' python has torch and transformers (so PyYAML) but neither hydra nor omegaconf. A command
that must run there (`make gpu-check`) keeps one schema and one set of config files; where hydra is
absent, this module reads them with the subset of hydra's rules they use, merged in the defaults list's
order: `/base` (the shared groups), `_self_`, `<group>@<key>: <option>` (a group beside the config),
`/<group>: <option>` (a group under conf/, chosen by `<group>=<option>` like the shared ones; a group
beside the config is chosen as hydra chooses it, `<path from conf/>/<group>@<key>=<option>`) and
`[optional] /<path>/<group>@_global_: <name with ${group} choices>` (as the scale files and the GPU
check's plans are picked); `${a.b}` and `${repo_root:}` interpolations; `key=value` and
`group=option` overrides. Anything else is refused, naming it, so the two readers cannot silently
disagree (tests compare them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from common.errors import EXIT_BAD_INPUT, BadInput
from common.repo import REPO_ROOT
from common.runinfo import scrub
from common.schema import module_of
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
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
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


CHOICE = re.compile(r"\$\{(\w+)\}")


def schema_defaults(schema: type) -> dict:
    """A schema's defaults as plain data (required values as '???'): what hydra starts from when a
    config names its schema first in its defaults list."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = "???"
        out[f.name] = schema_defaults(type(value)) if dataclasses.is_dataclass(value) else value
    return out


def _entries(path: Path, defaults: list) -> list[tuple]:
    """The defaults list as (kind, group, key, option, optional) in merge order; kinds: schema, self,
    shared, root (a group under conf/, chosen by name), local (beside the config), global (at the top
    level)."""
    out = []
    for entry in defaults:
        if entry == "_self_":
            out.append(("self", None, None, None, False))
            continue
        if entry == "/base":
            out += [("shared", group, group, None, False) for group in SHARED]
            continue
        if isinstance(entry, str) and entry.startswith("/schema_"):
            out.append(("schema", None, None, None, False))
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise BadInput(f"{path}: defaults entry {entry!r} is not supported without hydra")
        ((spec, option),) = entry.items()
        optional = spec.startswith("optional ")
        spec = spec.removeprefix("optional ").strip()
        group, _, key = spec.partition("@")
        if group.startswith("/") and key == "_global_":
            out.append(("global", group.lstrip("/"), None, str(option), optional))
        elif group.startswith("/") and not key and "/" not in group[1:] and not optional:
            out.append(("root", group[1:], group[1:], str(option), False))
        elif not group.startswith("/") and key and not optional:
            out.append(("local", group, key, str(option), False))
        else:
            raise BadInput(f"{path}: defaults entry {entry!r} is not supported without hydra")
    if not any(kind == "self" for kind, *_ in out):
        out.append(("self", None, None, None, False))
    return out


def load(config_name: str, config_dir: str | Path, overrides: list[str], schema: type | None = None) -> dict:
    """The config as plain data, interpolations resolved; `schema` gives the defaults the config's
    YAML leaves out (where its defaults list names it, as for hydra)."""
    config_dir = Path(config_dir)
    path = config_dir / f"{config_name}.yaml"
    own = _yaml(path)
    entries = _entries(path, own.pop("defaults", []))
    folder = path.parent.relative_to(config_dir).as_posix()

    def choice_key(kind: str, group: str, key: str) -> str:
        """How an override chooses the group's option: hydra's name for it."""
        if kind != "local":
            return group
        return f"{group}@{key}" if folder == "." else f"{folder}/{group}@{key}"

    choices = {
        choice_key(kind, group, key): SHARED.get(group, option)
        for kind, group, key, option, _ in entries
        if kind in ("shared", "root", "local")
    }
    values = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or name.startswith(("+", "~")):
            raise BadInput(f"override {item!r}: expected key=value")
        if name in choices:
            choices[name] = value
        else:
            values[name] = _parse_value(value)

    def option_file(folder: Path, name: str) -> Path:
        """The chosen option's file; a choice with no file is named as hydra names it."""
        found = folder / f"{choices[name]}.yaml"
        if not found.is_file():
            options = ", ".join(sorted(f.stem for f in folder.glob("*.yaml")))
            raise BadInput(f"{name}: no option {choices[name]!r} (choices: {options})")
        return found

    data: dict = {}
    for kind, group, key, option, optional in entries:
        if kind == "schema" and schema is not None:
            data = _merge(data, schema_defaults(schema))
        elif kind == "self":
            data = _merge(data, own)
        elif kind in ("shared", "root"):
            data = _merge(data, {key: _yaml(option_file(config_dir / group, group))})
        elif kind == "local":
            data = _merge(data, {key: _yaml(option_file(path.parent / group, choice_key(kind, group, key)))})
        elif kind == "global":

            def choice(match: re.Match, group: str = group) -> str:
                if match.group(1) not in choices:
                    raise BadInput(f"{path}: defaults entry {group}: no group {match.group(1)!r} to name")
                return choices[match.group(1)]

            found = config_dir / group / f"{CHOICE.sub(choice, option)}.yaml"
            if found.is_file() or not optional:
                data = _merge(data, _yaml(found))
    for dotted, value in values.items():
        _set(data, dotted, value)
    return _resolve(data, data)


def plain_main(task, config_name: str, config_dir: str | Path, schema: type, argv: list[str]) -> None:
    """`main()` of a command where hydra is absent: same files, same schema, same run artefacts."""
    import time

    import yaml

    from common import run as run_mod

    if "--help" in argv or "-h" in argv:
        print(f"usage: python -m {module_of(config_name)} [key=value ...]  (hydra absent: plain reader)")
        print(sys.modules[task.__module__].__doc__ or "")
        raise SystemExit(0)
    try:
        data = load(config_name, config_dir, argv, schema)
        cfg = build(schema, data)  # every key checked, as for hydra apps
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    run_dir = Path(cfg.result_dir) / "runs" / time.strftime("%Y-%m-%d_%H-%M-%S")
    created = run_mod.owns(run_dir)
    run_mod.execute(task, cfg, run_dir, data, yaml.safe_dump(scrub(data), sort_keys=False), created)
