"""Every key of every command is checked before anything is written: a fuzz test generated from the
schemas. For each key, values its type or rule refuses (wrong type, NaN, below a bound, an unknown
choice, an empty list) must be bad input naming that key, in one line, with nothing written."""

import dataclasses
import importlib
import math
import random
import sys
import typing

import pytest

from common.config import compose, composing_error, validate
from common.errors import BadInput
from common.schema import Rule, module_of
from common.validation import missing_rules
from jobs.routing import App, load
from tests.test_layout import _command_configs

COMMANDS = [c for c in _command_configs() if c != "jobs/render"]


def _schema(config: str) -> type:
    from omegaconf import OmegaConf

    load(App(config))
    return OmegaConf.get_type(compose(config))


def leaves(schema: type, prefix: str = ""):
    """(key, type, rule) of every leaf key; nested dataclasses are walked, lists of them skipped."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) is typing.Union:
            hint, optional = [a for a in typing.get_args(hint) if a is not type(None)][0], True
        if dataclasses.is_dataclass(hint):
            yield from leaves(hint, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass((typing.get_args(hint) or (0,))[0]):
            continue
        elif typing.get_origin(hint) is not dict and hint is not dict:
            yield prefix + f.name, hint, f.metadata.get("rule") or Rule(), optional


def _below(rule: Rule, integer: bool):
    for bound, step in ((rule.ge, 1), (rule.gt, 0)):
        if bound is not None:
            value = bound - step if integer else bound - max(abs(bound), 1.0) * (0.5 if step else 0.0)
            return int(value) if integer else value
    return None


def _above(rule: Rule, integer: bool):
    for bound, step in ((rule.le, 1), (rule.lt, 0)):
        if bound is not None:
            value = bound + step if integer else bound + max(abs(bound), 1.0) * (0.5 if step else 0.0)
            return int(value) if integer else value
    return None


def _scalar_bad(hint, rule: Rule) -> list[str]:
    if hint is bool:
        return ["maybe"]
    if hint is int:
        return ["abc", "1.5", *(str(v) for v in (_below(rule, True), _above(rule, True)) if v is not None)]
    if hint is float:
        return [
            "abc",
            "nan",
            "inf",
            *(repr(float(v)) for v in (_below(rule, False), _above(rule, False)) if v is not None),
        ]
    if hint is str and rule.choices is not None:
        return ["nosuch_choice_x"]
    if hint is str and rule.nonempty:
        return ["''"]
    return []


def bad_values(hint, rule: Rule) -> list[str]:
    """Override values the key must refuse."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (str,)
        out = ["[]"] if rule.nonempty else []
        if item in (int, float):
            out.append("abc")  # not a list
        return out + [f"[{v}]" for v in _scalar_bad(item, rule) if v not in ("''",)]
    return _scalar_bad(hint, rule)


CASES = [
    (c, key, value)
    for c in COMMANDS
    for key, hint, rule, _ in leaves(_schema(c))
    for value in bad_values(hint, rule)
]


def _refusal(config: str, override: str) -> str:
    try:
        cfg = compose(config, [override])
    except Exception as err:  # noqa: BLE001 - whatever composing raises, the command reports in one line
        return str(composing_error(err))
    try:
        validate(cfg)
    except BadInput as err:
        return str(err)
    pytest.fail(f"{config}: {override} was accepted")


def test_the_fuzz_cases_cover_every_command():
    assert {c for c, _, _ in CASES} == set(COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("config,key,value", CASES)
def test_every_bad_value_is_refused_naming_its_key(config, key, value):
    message = _refusal(config, f"{key}={value}")
    assert message.split(":")[0].split("[")[0] == key and "\n" not in message, message


def test_a_sample_of_bad_values_is_refused_naming_its_key():
    """The default suite's share of the exhaustive test above: 3 cases per command, fixed seed."""
    rng = random.Random(0)
    for config in COMMANDS:
        cases = [c for c in CASES if c[0] == config]
        for _, key, value in rng.sample(cases, min(3, len(cases))):
            message = _refusal(config, f"{key}={value}")
            assert message.split(":")[0].split("[")[0] == key and "\n" not in message, (config, message)


@pytest.mark.parametrize("config", COMMANDS)
def test_plus_unknown_and_a_misspelt_key_exit_2_before_anything_is_written(
    config, tmp_path, capsys, monkeypatch
):
    module = importlib.import_module(module_of(config))
    for argv in (["+unknown_key_x=1"], ["unknown_key_x=1"]):
        monkeypatch.setattr(
            sys,
            "argv",
            [
                module.__name__,
                f"paths.results_dir={tmp_path}",
                f"paths.figures_dir={tmp_path}",
                *argv,
            ],
        )
        with pytest.raises(SystemExit) as exit_:
            module.main()
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith("error: unknown_key_x") and err.count("\n") == 1, err
        assert "Traceback" not in err and not any(tmp_path.iterdir())


def test_every_key_has_a_rule():
    """A new key must say what it accepts (or why anything of its type goes): no key slips past."""
    missing = {c: missing_rules(_schema(c)) for c in COMMANDS}
    assert not {c: m for c, m in missing.items() if m}


def test_a_required_value_is_named():
    from omegaconf import MISSING, OmegaConf

    @dataclasses.dataclass
    class Needs:
        paper: str = MISSING

    with pytest.raises(BadInput, match="^paper: a value is required"):
        validate(OmegaConf.structured(Needs))


def test_nan_is_refused_even_without_a_rule():
    from common.validation import build

    @dataclasses.dataclass
    class Tiny:
        x: float = 1.0

    with pytest.raises(BadInput, match="x: must be a finite number"):
        build(Tiny, {"x": math.nan})
