"""Command-line flags generated from a settings dataclass, so a practitioner's CLI and a hydra config share
one definition of every setting: its name, type, default, allowed values and help text.

A field becomes `--field-name` (or a positional argument); its help, argparse group and allowed values
come from the field's metadata, written with `option(...)`: `common.schema.spec`'s metadata (a `Rule` of
bounds and choices, and the help text) plus the flag's group and form. Adding a field adds the flag.
Parsing builds the dataclass itself, so the checks in its `__post_init__` (`check_rules` and any of its
own) run for the command line and for a config alike; `common.validation` reads the same rules when the
dataclass is part of a hydra config. No hydra or omegaconf here: the GPU-node path imports this too.

    @dataclass
    class Settings:
        epsilon: float = option(0.1, ge=0, lt=1, group="rule", help="keep T(B)/(B T(1)) > epsilon")

        def __post_init__(self):
            check_rules(self)

    parser = argparse.ArgumentParser()
    add_arguments(parser, Settings)
    settings = from_namespace(Settings, parser.parse_args())
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import operator
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from common.errors import BadInput
from common.schema import Rule

_NO_DEFAULT = dataclasses.MISSING
_BOUNDS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def option(
    default: Any = _NO_DEFAULT,
    *,
    help: str,
    group: str | None = None,  # noqa: A002 - argparse's name
    metavar: str | None = None,
    positional: bool = False,
    **rule: Any,
) -> Any:
    """A dataclass field that is also a command-line flag. `help` is plain text (a '%' needs no escaping);
    `rule` is a `common.schema.Rule` (ge, gt, le, lt, choices, nonempty, free: why any value goes), checked
    by `check_rules` and, in a hydra config, by `common.validation`; choices are argparse's too.
    `positional` makes it an optional positional argument instead of `--name`. Without `default` the
    flag is required."""
    if "choices" in rule:
        rule["choices"] = tuple(rule["choices"])
    meta = {"rule": Rule(**rule), "help": help, "group": group, "metavar": metavar, "positional": positional}
    return dataclasses.field(default=default, metadata=meta)


def _choices(meta: Mapping[str, Any]) -> tuple | None:
    """The allowed values of the field's rule, if it has any."""
    choices = getattr(meta.get("rule"), "choices", None)
    return None if choices is None else tuple(choices)


def flag_of(name: str) -> str:
    """`kv_pool_gib` -> `--kv-pool-gib`."""
    return "--" + name.replace("_", "-")


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...] / X | None, whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return hint, False


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not _NO_DEFAULT:
        return f.default
    if f.default_factory is not _NO_DEFAULT:
        return f.default_factory()
    return _NO_DEFAULT


def add_arguments(
    parser: argparse.ArgumentParser, cls: type, exclude: Iterable[str] = (), group_order: Iterable[str] = ()
) -> None:
    """Add one argument per field of the dataclass `cls` (those without help metadata are skipped),
    in groups named by the metadata: those of `group_order` first, the others as they first appear."""
    hints = typing.get_type_hints(cls)
    groups: dict[str | None, Any] = {g: parser.add_argument_group(g) for g in group_order}
    for f in dataclasses.fields(cls):
        if f.name in exclude or "help" not in f.metadata:
            continue
        meta = f.metadata
        group = meta.get("group")
        if group not in groups:
            groups[group] = parser if group is None else parser.add_argument_group(group)
        target = groups[group]
        kind, _ = _base_type(hints[f.name])
        default = _default_of(f)
        text = (meta["help"] or "").replace("%", "%%")
        kw: dict[str, Any] = {"help": text}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction if default is True else "store_true"
        else:
            origin = typing.get_origin(kind)
            if origin in (list, tuple):
                kw["nargs"] = "+"
                kind = (typing.get_args(kind) or (str,))[0]
            kw["type"] = kind
            if _choices(meta) is not None:
                kw["choices"] = _choices(meta)
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
            if default not in (_NO_DEFAULT, None):
                kw["help"] += f" (default: {default})".replace("%", "%%")
        if meta.get("positional"):
            if default is not _NO_DEFAULT:
                kw["nargs"] = "?"
                kw["default"] = default
            target.add_argument(f.name, **kw)
            continue
        if default is _NO_DEFAULT:
            kw["required"] = True
        else:
            kw["default"] = default
        target.add_argument(flag_of(f.name), dest=f.name, **kw)


def from_namespace(cls: type, namespace: argparse.Namespace) -> Any:
    """The dataclass built from parsed arguments (its `__post_init__` checks them)."""
    return cls(
        **{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}
    )


def from_mapping(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """The dataclass built from a mapping (a config node): an unknown key, or a value its checks refuse,
    is bad input prefixed with `where` (the node's key)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    prefix = f"{where}." if where else ""
    if unknown:
        raise BadInput(
            f"{prefix}{unknown[0]}: not a key of {cls.__name__} (known: {', '.join(sorted(names))})"
        )
    try:
        return cls(**dict(values))
    except BadInput as err:
        raise BadInput(
            f"{prefix}{err}" if str(err).split(":")[0] in names else f"{where or cls.__name__}: {err}"
        ) from None


def check_rules(obj: Any) -> None:
    """Bad input, naming the field, unless every set field (not None) keeps its rule: bounds, choices,
    non-empty; a number must be finite. What `common.validation` checks in a config, for a dataclass
    built from a command line or in code."""
    for f in dataclasses.fields(obj):
        rule, value = f.metadata.get("rule"), getattr(obj, f.name)
        if rule is None or value is None:
            continue
        if rule.nonempty and isinstance(value, (str, list, tuple)) and len(value) == 0:
            raise BadInput(f"{f.name}: must not be empty")
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                if not math.isfinite(item) and not rule.allow_nan:
                    raise BadInput(f"{f.name}: must be a finite number (got {item!r})")
                for word, bound in ((">=", rule.ge), (">", rule.gt), ("<=", rule.le), ("<", rule.lt)):
                    if bound is not None and not _BOUNDS[word](item, bound):
                        raise BadInput(f"{f.name}: must be {word} {bound:g} (got {item!r})")
            if rule.choices is not None and item not in rule.choices:
                raise BadInput(f"{f.name}: {item!r} is not one of {', '.join(map(str, rule.choices))}")


def to_argv(cls: type, values: Mapping[str, Any]) -> list[str]:
    """The command line that gives `values` (field name -> value): positionals first, then a flag for
    every value that differs from the field's default. The inverse of `add_arguments`."""
    positional, flags = [], []
    for f in dataclasses.fields(cls):
        if f.name not in values or "help" not in f.metadata:
            continue
        value, default = values[f.name], _default_of(f)
        if value is None or value == default:
            continue
        if f.metadata.get("positional"):
            positional.append(str(value))
        elif isinstance(value, bool):
            flags.append(flag_of(f.name) if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag_of(f.name), *map(str, value)]
        else:
            flags += [flag_of(f.name), str(value)]
    return positional + flags
