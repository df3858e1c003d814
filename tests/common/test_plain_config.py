"""The hydra-free reader of the GPU-node path gives the config hydra composes (an oracle), for each kind
of defaults entry it supports, and refuses what it does not support."""

import pytest
from omegaconf import OmegaConf

from common.config import compose, register_schema
from common.errors import BadInput
from common.plain_config import load
from common.repo import CONF_DIR


def _both(name, overrides, config_dir=CONF_DIR):
    cfg = compose(name, overrides, config_dir)
    schema = OmegaConf.get_type(cfg)
    return load(name, config_dir, overrides, schema), OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("batching/sweep", []),
        (
            "batching/sweep",
            ["scale=paper", "workload.output_len=7", "paths.results_dir=/tmp/x"],
        ),  # scale files
        ("batching/replicate", ["engine=vllm", "replicas=[2,3]"]),
    ],
)
def test_the_real_configs_read_alike(name, overrides):
    import papers.batching.config  # noqa: F401 - registers the schemas

    plain, composed = _both(name, overrides)
    assert plain == composed


SCHEMA = """
from dataclasses import dataclass, field
from common.schema import RunConfig

@dataclass
class Plan:
    name: str = "???"
    n: int = 0
    extra: int = 7

@dataclass
class Demo(RunConfig):
    plan: Plan = field(default_factory=Plan)
    local: dict = field(default_factory=dict)
    top: int = 1
    late: int = 0
"""


@pytest.fixture
def demo(tmp_path, demo_app):
    """demo_app's conf/ plus a root group (plan), per-command files picked by its choice (@_global_),
    a group beside the config (local@local) and an optional file that is absent."""
    conf = demo_app / "conf"
    for option, n in (("small", 1), ("full", 2)):
        (conf / "plan").mkdir(exist_ok=True)
        (conf / "plan" / f"{option}.yaml").write_text(f"name: {option}\n")
        (conf / "demo" / "plans").mkdir(exist_ok=True)
        (conf / "demo" / "plans" / f"{option}.yaml").write_text(f"plan:\n  n: {n}\nlate: {n}\n")
        (conf / "demo" / "local").mkdir(exist_ok=True)
        (conf / "demo" / "local" / f"{option}.yaml").write_text(f"size: {n}\n")
    (conf / "demo" / "cmd.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - /schema_demo_cmd\n  - /base\n  - /plan: full\n  - /demo/plans@_global_: ${plan}\n"
        "  - local@local: small\n  - _self_\n  - optional /demo/scale@_global_: cmd_${scale}\n"
        "paper: demo\nexperiment: cmd\ntop: 3\n"
    )
    namespace = {}
    exec(SCHEMA, namespace)  # noqa: S102 - a schema for the throw-away config
    register_schema("demo/cmd", namespace["Demo"])
    return conf


@pytest.mark.parametrize(
    "overrides",
    [[], ["plan=small"], ["scale=paper"], ["plan=small", "demo/local@local=full", "top=5", "plan.extra=1"]],
)
def test_root_groups_choices_in_names_local_groups_and_optional_files(demo, overrides):
    plain, composed = _both("demo/cmd", overrides, demo)
    assert plain == composed
    want = 1 if "plan=small" in overrides else 2
    assert plain["plan"]["n"] == want and plain["plan"]["name"] == ("small" if want == 1 else "full")


@pytest.mark.parametrize(
    "entry", ["- /demo/scale: x", "- /frida/fed@fed: default", "- override /logger: none"]
)
def test_an_entry_it_cannot_read_is_refused_naming_it(demo, entry):
    (demo / "demo" / "odd.yaml").write_text(f"# @package _global_\ndefaults:\n  {entry}\n  - _self_\n")
    with pytest.raises(BadInput, match="not supported without hydra"):
        load("demo/odd", demo, [])


def test_a_choice_without_its_file_is_named_as_hydra_names_it(demo):
    with pytest.raises(BadInput, match=r"^plan: no option 'nope' \(choices: full, small\)"):
        load("demo/cmd", demo, ["plan=nope"])
    with pytest.raises(BadInput, match=r"^demo/local@local: no option 'nope'"):
        load("demo/cmd", demo, ["demo/local@local=nope"])
