"""The FRIDA configs compose, and bad keys or values are named before anything is written."""

import importlib
import sys

import pytest
from hydra.errors import ConfigCompositionException

from common.config import compose, run_task
from common.data import known
from common.errors import BadInput
from papers.frida import detect
from papers.frida.config import DATASETS, federation_from_dict

from .conftest import tiny_fed


@pytest.mark.parametrize("experiment", ["detect", "grid", "bench"])
def test_real_configs_compose_at_both_scales(experiment):
    smoke = compose(f"frida/{experiment}")
    paper = compose(f"frida/{experiment}", ["scale=paper"])
    assert smoke.fed.dataset == "digits" and smoke.fed.num_clients == 10
    assert paper.fed.dataset == "cifar10" and paper.fed.num_clients > smoke.fed.num_clients
    assert smoke.fed.seed == smoke.seed


def test_unknown_override_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as err:
        compose("frida/detect", ["fed.num_clientz=3"])
    assert "num_clientz" in str(err.value) + str(err.value.__cause__)


def test_unknown_federation_key_from_a_run_config_is_named():
    with pytest.raises(BadInput, match="bogus_key"):
        federation_from_dict({"rounds": 2, "bogus_key": 1})


@pytest.mark.parametrize(
    "override, key",
    [
        ("fed.free_rider=lazy", "fed.free_rider"),
        ("fed.detectors=[mia_loss,oracle]", "fed.detectors"),
        ("fed.faults=[3-2-raise]", "fed.faults"),
    ],
)
def test_bad_values_are_named(override, key):
    with pytest.raises(BadInput, match=key.replace(".", r"\.")):
        tiny_fed(override)


def test_bad_runtime_exits_2_and_leaves_no_run_dir(tmp_path):
    cfg = compose("frida/detect", [f"paths.results_dir={tmp_path}", "logger=none", "runtime=grpc"])
    with pytest.raises(SystemExit) as err:
        run_task(detect.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["fed.vote=[]"], "^fed.vote: names no detector"),
        (["fed.canary_size=0", "fed.detectors=[mia_grad]"], "^fed.canary_size: must be >= 1"),
        (["fed.mitigate=true", "fed.mitigate_by=vote", "fed.detectors=[l2]"], "^fed.mitigate_by"),
    ],
)
def test_inconsistent_detector_settings_are_named(overrides, message):
    with pytest.raises(BadInput, match=message):
        tiny_fed(*overrides)


def test_the_dataset_choices_are_the_registrys_names():
    assert set(DATASETS) == set(known())


def test_the_apps_json_gate_checks_values_as_the_command_line_does():
    with pytest.raises(BadInput, match=r"^fed\.alpha: must be > 0"):
        federation_from_dict({"alpha": -1.0})
    with pytest.raises(BadInput, match=r"^fed\.num_free_riders: 5 free-riders is more than the 4 clients"):
        federation_from_dict({"num_clients": 8, "fraction_train": 0.5, "num_free_riders": 5})


CONFIG_ERRORS = [  # (command, overrides, the key the one-line error must start with)
    ("detect", ["fed.dataset=nosuch"], "fed.dataset"),
    ("detect", ["fed.alpha=0"], "fed.alpha"),
    ("detect", ["fed.alpha=-0.5"], "fed.alpha"),
    ("detect", ["fed.num_clients=0"], "fed.num_clients"),
    (
        "detect",
        ["fed.num_clients=10", "fed.fraction_train=0.2", "fed.num_free_riders=3"],
        "fed.num_free_riders",
    ),
    ("detect", ["fed.num_free_riders=11"], "fed.num_free_riders"),
    ("detect", ["fed.dataset=shakespeare"], "fed.model"),
    ("detect", ["fed.partition=natural"], "fed.partition"),
    ("detect", ["fed.faults=['12:1:nan']"], "fed.faults"),
    ("grid", ["num_free_riders=[2,30]"], "num_free_riders"),
    ("grid", ["partitions=['iid','natural']"], "partitions"),
    ("grid", ["partitions=['0.1','-1']"], "partitions"),
    ("research", ["datasets=[mnist,nosuch]"], "datasets"),
    ("research", ["fed.fraction_train=0.1"], "num_free_riders"),
    ("canary", ["canary_per_batch=[50]"], "canary_per_batch"),
    ("bench", ["canary_modes=[sometimes]"], "canary_modes"),
]


@pytest.mark.parametrize("command, overrides, key", CONFIG_ERRORS)
def test_config_errors_exit_2_naming_the_key_and_leave_nothing_behind(
    command, overrides, key, tmp_path, capsys, monkeypatch
):
    """Checked before hydra makes a run directory: exit 2, one line starting with the key, no
    traceback, and nothing under the results or figures directories."""
    module = importlib.import_module(f"papers.frida.{command}")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            module.__name__,
            f"paths.results_dir={tmp_path}",
            f"paths.figures_dir={tmp_path}",
            "logger=none",
            *overrides,
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        module.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith("error: ") and err[7:].split(":")[0].split("[")[0] == key, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())
