"""Broken clients are logged and left out; the run goes on and keeps what it recorded."""

import json
import logging

import numpy as np
import pytest

from papers.frida.server_app import JsonlSink, read_result
from papers.frida.strategy import BadReply, check_reply

from .conftest import tiny_fed


def test_a_raising_client_and_a_nan_client_are_left_out_and_the_run_continues(
    run_inprocess, tmp_path, caplog
):
    fed = tiny_fed(
        "fed.num_clients=5",
        "fed.num_free_riders=1",
        "fed.rounds=3",
        "fed.faults=['1:2:raise','3:2:nan']",
        "fed.detectors=[mia_loss,l2,vote]",
        "fed.vote=[mia_loss]",
    )
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


# every malformed reply of issue 14 point 5, the status the server gives it, and words of its reason
FAULTS = {
    "raise": ("error", "injected fault"),
    "nan": ("nan", "non-finite"),
    "inf": ("nan", "non-finite"),
    "huge": ("magnitude", "magnitude 1e+30"),
    "shape": ("malformed", "where the global model has"),
    "missing": ("malformed", "missing ['body.1.weight']"),
    "extra": ("malformed", "extra ['backdoor.weight']"),
    "dtype": ("malformed", "float64"),
    "nometrics": ("malformed", "metrics"),
    "badcount": ("bad_count", "num-examples -5"),
    "drop": ("timeout", "no reply"),
}


def test_each_malformed_reply_is_excluded_with_its_reason_and_the_federation_finishes(run_inprocess, caplog):
    """One client per fault, all in round 2: each is refused before any detector runs, with a logged
    reason; the honest clients are averaged, and the round after is whole again."""
    kinds = list(FAULTS)
    n = len(kinds) + 2
    faults = ",".join(f"'{i}:2:{kind}'" for i, kind in enumerate(kinds))
    fed = tiny_fed(
        f"fed.num_clients={n}",
        "fed.free_rider=none",
        "fed.num_free_riders=0",
        "fed.rounds=3",
        "fed.local_epochs=1",
        f"fed.faults=[{faults}]",
        "fed.detectors=[mia_loss,l2,foolsgold]",
    )
    with caplog.at_level(logging.WARNING, logger="papers.frida.strategy"):
        result = run_inprocess(fed)
    assert [r["round"] for r in result.rounds] == [0, 1, 2, 3]
    round2 = {r["partition_id"]: r for r in result.clients if r["round"] == 2}
    assert len(round2) == n
    for pid, kind in enumerate(kinds):
        status, words = FAULTS[kind]
        row = round2[pid]
        assert row["status"] == status and row["excluded"] and words in row["error"], (kind, row)
        assert "score.l2" not in row  # no detector saw it
        assert any(words in m for m in caplog.messages), kind
    assert [round2[p]["status"] for p in (n - 2, n - 1)] == ["ok", "ok"]
    assert result.rounds[2]["n_failed"] == len(kinds) and result.rounds[2]["n_excluded"] == 0
    assert all(r["status"] == "ok" for r in result.clients if r["round"] == 3)
    assert all(np.isfinite(w).all() and np.abs(w).max() < 100 for w in result.final_weights.values())
    assert result.rounds[3]["test_accuracy"] > result.rounds[0]["test_accuracy"]


def test_reply_checks_name_what_is_wrong_without_trusting_the_reply():
    from flwr.app import ArrayRecord, MetricRecord, RecordDict

    from papers.frida.models import build_model, get_weights, to_record

    fed = tiny_fed()
    glob = get_weights(build_model("mlp", (1, 8, 8), 10, 8))
    good = {"partition-id": 1, "num-examples": 30}
    pid, n, weights, _ = check_reply(
        RecordDict({"arrays": to_record(glob), "metrics": MetricRecord(good)}), glob, 1, fed
    )
    assert (pid, n) == (1, 30) and weights.keys() == glob.keys()
    cases = [
        ({**good, "partition-id": 2}, "partition-id 2 from the node of partition 1"),
        ({**good, "partition-id": 99}, "not one of the federation's"),
        ({**good, "num-examples": 2.5}, "num-examples"),
        ({**good, "num-examples": fed.max_examples + 1}, "num-examples"),
    ]
    for metrics, words in cases:
        with pytest.raises(BadReply, match=words):
            check_reply(
                RecordDict({"arrays": to_record(glob), "metrics": MetricRecord(metrics)}), glob, 1, fed
            )
    with pytest.raises(BadReply, match="no 'arrays' record"):
        check_reply(RecordDict({"metrics": MetricRecord(good)}), glob, 1, fed)
    # finite, every |w| below reply_max_abs, but far from the global model
    with pytest.raises(BadReply, match="times the global model's norm"):
        far = {k: v + 50.0 for k, v in glob.items()}
        check_reply(
            RecordDict({"arrays": to_record(far), "metrics": MetricRecord(good)}),
            glob,
            1,
            tiny_fed("fed.reply_max_update_ratio=10"),
        )
    assert isinstance(ArrayRecord(), ArrayRecord)


def test_mitigation_leaves_flagged_clients_out_of_the_average(run_inprocess):
    fed = tiny_fed(
        "fed.num_clients=5",
        "fed.num_free_riders=1",
        "fed.free_rider=plain",
        "fed.rounds=2",
        "fed.detectors=[mia_loss]",
        "fed.vote=[mia_loss]",
        "fed.mitigate=true",
        "fed.mitigate_by=mia_loss",
    )
    result = run_inprocess(fed)
    for row in result.clients:
        assert row["excluded"] == row["flag.mia_loss"]
    flagged = sum(r["flag.mia_loss"] for r in result.clients if r["round"] == 1)
    assert result.rounds[1]["n_excluded"] == flagged
