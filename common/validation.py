"""Every command's config checked against its schema before anything is written.

`build(schema, data)` turns the composed config (plain data, interpolations resolved) into an instance
of the command's dataclass: an unknown key (a typo, or `+key=...` that hydra would accept silently), a
missing value, a wrong type, NaN, or a value outside the key's `Rule` (common.schema.spec) is bad
input naming the key. Cross-key rules live in one `check(self)` method per schema. The same function
serves hydra apps (`common.app`, before hydra makes a run directory) and the hydra-free GPU-node path
(`common.plain_config`).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from common.errors import BadInput
from common.schema import MISSING, Rule


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, rule: Rule, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value) and not rule.allow_nan:
        raise BadInput(f"{key}: must be a finite number (got {_show(value)})")
    for bound, ok, word in (
        (rule.ge, lambda b: value >= b, ">="),
        (rule.gt, lambda b: value > b, ">"),
        (rule.le, lambda b: value <= b, "<="),
        (rule.lt, lambda b: value < b, "<"),
    ):
        if bound is not None and not ok(bound):
            raise BadInput(f"{key}: must be {word} {bound:g} (got {_show(value)})")


def _apply(value: Any, rule: Rule, key: str) -> None:
    if isinstance(value, (list, str, dict)) and rule.nonempty and len(value) == 0:
        raise BadInput(f"{key}: must not be empty")
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if isinstance(value, list) else key
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            _number(item, rule, where)
        if rule.choices is not None and item is not None and item not in rule.choices:
            raise BadInput(f"{where}: {_show(item)} is not one of {', '.join(map(str, rule.choices))}")


def _typed(value: Any, hint: Any, key: str) -> Any:
    """`value` as type `hint` (ints widen to float), or BadInput naming the key."""
    origin = typing.get_origin(hint)
    if isinstance(value, str) and value == MISSING:
        raise BadInput(f"{key}: a value is required")
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _typed(value, args[0], key)
    if value is None:
        raise BadInput(f"{key}: a value is required (got null)")
    if origin is list:
        if not isinstance(value, list):
            raise BadInput(f"{key}: expected a list (got {_show(value)})")
        (item,) = typing.get_args(hint) or (Any,)
        return [_typed(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise BadInput(f"{key}: expected a mapping (got {_show(value)})")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key + ".")
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise BadInput(f"{key}: expected {hint.__name__} (got {_show(value)})")
    return value


def build(schema: type, data: Any, prefix: str = "") -> Any:
    """An instance of `schema` from plain data, every key checked; then the schema's own `check()`."""
    if not isinstance(data, dict):
        raise BadInput(f"{prefix.rstrip('.') or 'config'}: expected a mapping (got {_show(data)})")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadInput(f"{prefix}{unknown[0]}: not a key of this config")
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is MISSING:
                raise BadInput(f"{key}: a value is required")
            continue
        value = _typed(data[name], hints[name], key)
        if value is not None:  # a key without a rule still refuses NaN and infinity
            _apply(value, f.metadata.get("rule") or Rule(), key)
        kwargs[name] = value
    instance = schema(**kwargs)
    check = getattr(instance, "check", None)
    if callable(check):
        check()
    return instance


def missing_rules(schema: type, prefix: str = "") -> list[str]:
    """Keys with no Rule: every leaf key must say what it accepts (or, with `free`, why anything goes)."""
    out = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        inner = (
            [a for a in typing.get_args(hint) if a is not type(None)]
            if typing.get_origin(hint) is typing.Union
            else [hint]
        )
        if dataclasses.is_dataclass(inner[0]):
            out += missing_rules(inner[0], f"{prefix}{f.name}.")
        elif typing.get_origin(inner[0]) is list and dataclasses.is_dataclass(
            (typing.get_args(inner[0]) or (None,))[0]
        ):
            out += missing_rules(typing.get_args(inner[0])[0], f"{prefix}{f.name}[].")
        elif "rule" not in f.metadata:
            out.append(prefix + f.name)
    return out
