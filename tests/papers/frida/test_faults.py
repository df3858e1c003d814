"""Broken clients are logged and left out; the run goes on and keeps what it recorded."""

import json
import logging

import numpy as np

from papers.frida.server_app import JsonlSink, read_result

from .conftest import tiny_fed


def test_a_raising_client_and_a_nan_client_are_left_out_and_the_run_continues(run_inprocess, tmp_path,
                                                                                 caplog):
    fed = tiny_fed("fed.num_clients=5", "fed.num_free_riders=1", "fed.rounds=3",
                   "fed.faults=['1:2:raise','3:2:nan']", "fed.detectors=[mia_loss,l2,vote]",
                   "fed.vote=[mia_loss]")
    sink = JsonlSink(tmp_path)
    with caplog.at_level(logging.WARNING, logger="papers.frida.strategy"):
        result = run_inprocess(fed, on_round=sink)
    assert [r["round"] for r in result.rounds] == [0, 1, 2, 3]
    round2 = [r for r in result.clients if r["round"] == 2]
    statuses = sorted(r["status"] for r in round2)
    assert statuses == ["error", "nan", "ok", "ok", "ok"]
    assert all(r["excluded"] for r in round2 if r["status"] != "ok")
    assert "injected fault" in next(r["error"] for r in round2 if r["status"] == "error")
    assert result.rounds[2]["n_failed"] == 2
    for k in (1, 3):
        assert len([r for r in result.clients if r["round"] == k and r["status"] == "ok"]) == 5
    assert all(np.isfinite(w).all() for w in result.final_weights.values())
    assert any("raises in round 2" in m for m in caplog.messages)
    assert any("non-finite" in m for m in caplog.messages)
    # every round reached the sink as it finished, failures included
    on_disk = read_result(tmp_path)
    assert [r["round"] for r in on_disk.rounds] == [0, 1, 2, 3]
    assert len(on_disk.clients) == len(result.clients)
    assert json.loads((tmp_path / "rounds.jsonl").read_text().splitlines()[2])["n_failed"] == 2


def test_mitigation_leaves_flagged_clients_out_of_the_average(run_inprocess):
    fed = tiny_fed("fed.num_clients=5", "fed.num_free_riders=1", "fed.free_rider=plain", "fed.rounds=2",
                   "fed.detectors=[mia_loss]", "fed.vote=[mia_loss]", "fed.mitigate=true",
                   "fed.mitigate_by=mia_loss")
    result = run_inprocess(fed)
    for row in result.clients:
        assert row["excluded"] == row["flag.mia_loss"]
    flagged = sum(r["flag.mia_loss"] for r in result.clients if r["round"] == 1)
    assert result.rounds[1]["n_excluded"] == flagged
