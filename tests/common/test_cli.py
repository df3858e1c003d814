"""Flags generated from a settings dataclass: one flag per field, typed, with its help, default and
choices; parsing builds the dataclass (so its checks run); `to_argv` is the inverse of parsing."""

import argparse
from dataclasses import dataclass, fields
from typing import Optional

import pytest

from common.cli import add_arguments, check_rules, from_mapping, from_namespace, option, to_argv
from common.errors import BadInput


@dataclass
class Toy:
    path: Optional[str] = option(None, positional=True, group="input", free="a path", help="a file")
    rate: float = option(0.5, ge=0, le=1, group="rule", help="share in [0, 1]; 100% is 1")
    count: Optional[int] = option(None, ge=1, group="rule", help="how many")
    unit: Optional[str] = option(None, choices=("pct", "bytes"), help="of the column")
    loud: bool = option(False, free="a switch", help="say more")
    keep: bool = option(True, free="a switch", help="keep the rest")
    untouched: int = 3  # no option metadata: not a flag

    def __post_init__(self):
        check_rules(self)
        if self.loud and not self.keep:
            raise BadInput("--loud needs --keep")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    add_arguments(p, Toy, group_order=("input",))
    return p


def test_every_field_with_help_is_a_flag_with_its_type_default_and_help():
    text = parser().format_help()
    for flag in ("--rate", "--count", "--unit {pct,bytes}", "--loud", "--keep, --no-keep"):
        assert flag in text, flag
    assert "--untouched" not in text
    assert "share in [0, 1]; 100% is 1 (default: 0.5)" in text  # '%' needs no escaping in the help
    assert text.index("input:") < text.index("rule:")  # group_order first
    toy = from_namespace(Toy, parser().parse_args(["f.csv", "--count", "4", "--loud"]))
    assert toy == Toy(path="f.csv", rate=0.5, count=4, loud=True, keep=True)
    assert from_namespace(Toy, parser().parse_args(["--no-keep"])).keep is False
    assert from_namespace(Toy, parser().parse_args([])) == Toy()


def test_a_new_field_is_a_new_flag():
    assert len([f for f in fields(Toy) if "help" in f.metadata]) == 6
    actions = {a.dest for a in parser()._actions} - {"help"}
    assert actions == {"path", "rate", "count", "unit", "loud", "keep"}


@pytest.mark.parametrize("argv", [["--count", "many"], ["--unit", "percent"]])
def test_argparse_refuses_a_wrong_type_or_choice(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2


def test_the_dataclass_checks_what_argparse_cannot():
    """Its rules (bounds, choices, finite numbers) and its own checks, naming the field."""
    with pytest.raises(BadInput, match=r"^rate: must be <= 1 \(got 2.0\)"):
        from_namespace(Toy, parser().parse_args(["--rate", "2"]))
    with pytest.raises(BadInput, match="^rate: must be a finite number"):
        from_namespace(Toy, parser().parse_args(["--rate", "nan"]))
    with pytest.raises(BadInput, match="^count: must be >= 1"):
        from_namespace(Toy, parser().parse_args(["--count", "0"]))
    with pytest.raises(BadInput, match="^unit: 'percent' is not one of pct, bytes"):
        Toy(unit="percent")  # from a config, where argparse never saw it
    with pytest.raises(BadInput, match="needs --keep"):
        from_namespace(Toy, parser().parse_args(["--loud", "--no-keep"]))


def test_from_mapping_names_the_node_and_the_key():
    with pytest.raises(BadInput, match=r"^runs\.a\.speed: not a key of Toy"):
        from_mapping(Toy, {"rate": 0.1, "speed": 3}, "runs.a")
    with pytest.raises(BadInput, match=r"^runs\.a\.rate: must be >= 0"):
        from_mapping(Toy, {"rate": -1.0}, "runs.a")
    with pytest.raises(BadInput, match="^runs.a: --loud needs --keep"):
        from_mapping(Toy, {"loud": True, "keep": False}, "runs.a")
    assert from_mapping(Toy, {"count": 2}, "runs.a") == Toy(count=2)


@pytest.mark.parametrize(
    "values",
    [{}, {"path": "x.csv", "rate": 0.25}, {"loud": True}, {"count": 7, "unit": "bytes", "keep": False}],
)
def test_to_argv_is_the_inverse_of_parsing(values):
    argv = to_argv(Toy, values)
    assert from_namespace(Toy, parser().parse_args(argv)) == Toy(**values)


def test_to_argv_leaves_out_defaults_and_unset_values():
    assert to_argv(Toy, {"path": "x.csv", "rate": 0.5, "count": None, "loud": False}) == ["x.csv"]
