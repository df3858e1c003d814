"""The FRIDA configs compose, and bad keys or values are named."""

import pytest
from hydra.errors import ConfigCompositionException

from common.config import compose, run_task
from common.errors import BadInput
from papers.frida import detect
from papers.frida.config import federation_from_dict

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


@pytest.mark.parametrize("override, key", [("fed.free_rider=lazy", "fed.free_rider"),
                                           ("fed.detectors=[mia_loss,oracle]", "fed.detectors"),
                                           ("fed.faults=[3-2-raise]", "fed.faults")])
def test_bad_values_are_named(override, key):
    with pytest.raises(BadInput, match=key.replace(".", r"\.")):
        tiny_fed(override)


def test_bad_runtime_exits_2_and_leaves_no_run_dir(tmp_path):
    cfg = compose("frida/detect", [f"paths.results_dir={tmp_path}", "logger=none", "runtime=grpc"])
    with pytest.raises(SystemExit) as err:
        run_task(detect.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, message", [
    (["fed.vote=[]"], "fed.vote names no detector"),
    (["fed.canary_size=0", "fed.detectors=[mia_grad]"], "fed.canary_size must be >= 1"),
    (["fed.mitigate=true", "fed.mitigate_by=vote", "fed.detectors=[l2]"], "fed.mitigate_by"),
])
def test_inconsistent_detector_settings_are_named(overrides, message):
    with pytest.raises(BadInput, match=message):
        tiny_fed(*overrides)
