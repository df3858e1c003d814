"""The same apps under Flower's simulation runtime (Ray) and deployment runtime (SuperLink and
SuperNodes on 127.0.0.1). Both take tens of seconds on 2 cores: marked slow."""

import psutil
import pytest

from papers.frida.deployment import LocalDeployment
from papers.frida.simulation import run_in_simulation

from .conftest import tiny_fed


@pytest.mark.slow
def test_simulation_runtime_with_one_cpu_per_client(tmp_path):
    fed = tiny_fed(
        "fed.num_clients=4",
        "fed.num_free_riders=1",
        "fed.free_rider=plain",
        "fed.rounds=2",
        "fed.faults=['2:2:raise']",
    )
    result = run_in_simulation(fed, tmp_path, num_cpus=2, client_cpus=1.0)
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    assert sorted(r["status"] for r in result.clients if r["round"] == 2) == ["error", "ok", "ok", "ok"]
    fr = [r for r in result.clients if r["free_rider"]]
    assert all(r["flag.mia_loss"] for r in fr)


@pytest.mark.slow
def test_deployment_runtime_with_three_supernodes_stops_every_daemon(tmp_path):
    fed = tiny_fed("fed.num_clients=3", "fed.num_free_riders=1", "fed.free_rider=plain", "fed.rounds=2")
    deployment = LocalDeployment(3, tmp_path)
    try:
        deployment.start()
        result = deployment.run(fed, timeout=240)
    finally:
        deployment.close()
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    assert len(result.clients) == 6 and {r["partition_id"] for r in result.clients} == {0, 1, 2}
    assert any(r["flag.mia_loss"] for r in result.clients if r["free_rider"])
    assert len(deployment.pids) >= 4  # SuperLink, 3 SuperNodes (and what they started)
    assert not [
        p
        for p in deployment.pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


@pytest.mark.slow
def test_a_dead_supernode_times_out_and_the_run_continues(tmp_path):
    """A SuperNode killed after round 1: its partition's reply in round 2 never comes, the server waits
    fed.round_timeout_s, records a time-out (or the SuperLink's error) and finishes the run. (The same
    timeout bounds the wait for every node to connect before round 1, hence 60 s on a busy machine.)"""
    import time

    fed = tiny_fed(
        "fed.num_clients=3",
        "fed.num_free_riders=1",
        "fed.free_rider=plain",
        "fed.rounds=2",
        "fed.round_timeout_s=60",
        "fed.detectors=[mia_loss,l2]",
    )
    deployment = LocalDeployment(3, tmp_path)
    try:
        deployment.start()
        out = deployment.submit(fed)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            lines = (out / "rounds.jsonl").read_text().splitlines() if (out / "rounds.jsonl").exists() else []
            if len(lines) >= 2:  # round 0 (the initial model) and round 1
                break
            time.sleep(0.5)
        deployment.kill_supernode(2)
        result = deployment.wait(out, timeout=240)
    finally:
        deployment.close()
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    assert [r["status"] for r in result.clients if r["round"] == 1] == ["ok"] * 3, result.clients
    rows = {r["partition_id"]: r for r in result.clients if r["round"] == 2}
    assert rows[2]["status"] in ("timeout", "error") and rows[2]["excluded"], rows
    assert rows[0]["status"] == rows[1]["status"] == "ok"
