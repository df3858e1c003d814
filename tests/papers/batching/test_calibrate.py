"""The decode-step model against the authors' H100 data, run as the paper's `calibrate` benchmark: fitted
in-sample, on small batches only and on the OPT models only, each scored where it was not fitted."""

import json

import pytest

from papers.batching import calibrate
from tests.papers.batching.helpers import run_entry

MODELS = ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b")


@pytest.fixture(scope="module")
def mindgap(tmp_path_factory):
    results = tmp_path_factory.mktemp("calibrate")
    summary = run_entry(calibrate, "batching/calibrate", results)
    saved = json.loads((results / "batching" / "calibrate" / "smoke" / "summary.json").read_text())
    assert json.loads(json.dumps(summary, default=str)) == saved  # under the run's result dir, from paths
    return summary


def test_the_step_model_predicts_the_authors_h100_steps_it_was_not_fitted_on(mindgap):
    p = mindgap["protocols"]
    keys = {f"{m}/{s}" for m in MODELS for s in ("offline", "background")}
    assert set(p["in_sample"]["errors"]) == keys
    for key, e in p["in_sample"]["errors"].items():
        assert e["step_mape_pct"] < 5, key
        assert e["n"] >= 7, key
    # batch-held-out: fitted on batches <= 32 of every model, scored on every larger batch of each
    assert set(p["batch_held_out"]["errors"]) == keys
    assert all(b > 32 for e in p["batch_held_out"]["errors"].values() for b in e["batches"])
    assert all(e["step_mape_pct"] <= 5 for e in p["batch_held_out"]["errors"].values())
    # model-held-out: fitted on the two OPT models, scored on the Llama-2 models
    assert set(p["model_held_out"]["fitted_on"]) == {
        "opt-1.3b/offline",
        "opt-1.3b/background",
        "opt-2.7b/offline",
        "opt-2.7b/background",
    }
    assert {k.split("/")[0] for k in p["model_held_out"]["errors"]} == {"llama-2-7b", "llama-2-13b"}
    assert all(e["step_mape_pct"] <= 8 for e in p["model_held_out"]["errors"].values())
    assert mindgap["goals"]["batch_held_out"]["met"] and mindgap["goals"]["model_held_out"]["met"]
    # the memory gap: the bare roofline is far below every engine's step, the fit far closer
    for key, e in p["in_sample"]["errors"].items():
        assert mindgap["roofline"][key]["step_mape_pct"] > 4 * e["step_mape_pct"], key
    # physical coefficients: no fit reads the KV faster than the device's bandwidth, and the fits agree
    for protocol in p.values():
        assert protocol["model"]["k_kv"] >= 1 and protocol["model"]["t_layer"] > 0
    layer = [protocol["model"]["t_layer"] for protocol in p.values()]
    assert max(layer) / min(layer) < 1.2


def test_the_printed_table_names_every_protocol(mindgap):
    text = calibrate.table(mindgap, {"batch_held_out": 5.0, "model_held_out": 8.0})
    assert "in-sample" in text and "batch>32" in text and "model" in text
    assert text.count("met") == 2 and "llama-2-13b/offline" in text


@pytest.mark.parametrize(
    "override, key",
    [
        ("models=[gpt-5]", "models"),
        ("device=h999", "device"),
        ("reference_dir=/nonexistent", "reference_dir"),
        ("transfer_fit=[gpt-5]", "transfer_fit"),
    ],
)
def test_bad_input_exits_2_naming_the_key(override, key, tmp_path, caplog, capsys):
    with pytest.raises(SystemExit) as exc:
        run_entry(calibrate, "batching/calibrate", tmp_path, override)
    # checked with the config (before the run starts) or when the data is read
    said = capsys.readouterr().err.startswith(f"error: {key}:") or f"bad input: {key}" in caplog.text
    assert exc.value.code == 2 and said
    assert not (tmp_path / "batching" / "calibrate" / "smoke" / "summary.json").exists()
