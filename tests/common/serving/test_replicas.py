"""Replica processes: core shares, per-replica results in order, and failures that are reported, not
waited out (a replica that raises, one that dies without a word)."""

import os
import time

import pytest

from common.serving.replicas import ReplicaFailed, ReplicaGroup, core_sets

CORES = sorted(os.sched_getaffinity(0))
TINY = {"kind": "hf", "model": "opt-tiny", "device": "cpu", "dtype": "fp32"}
LONG = 120.0  # far above any run here: a failure seen well within it was reported, not waited out
two_cores = pytest.mark.skipif(len(CORES) < 2, reason="two replicas need two cores")


def _work(replica, engine, job):
    """Spawned replicas import this module by name and run it with their job."""
    import torch

    if job == "raise":
        raise ValueError("boom in the replica")
    if job == "die":
        os._exit(3)  # as a kill for memory would: no report, no clean exit
    for rnd in range(2):
        replica.wait()
        if replica.index == 0:
            time.sleep(0.2)  # replica 1 reports first: collect must still return replica order
        replica.report(
            {
                "job": job,
                "round": rnd,
                "cores": sorted(os.sched_getaffinity(0)),
                "threads": torch.get_num_threads(),
                "model": engine.describe()["model"],
            }
        )


@pytest.mark.parametrize("cores", [[0], [0, 1], [0, 1, 2], list(range(7)), [3, 5, 8, 13, 21]])
def test_core_sets_are_disjoint_contiguous_and_cover_the_cores(cores):
    for n in range(1, len(cores) + 1):
        sets = core_sets(n, cores)
        assert len(sets) == n and all(sets)
        assert [c for s in sets for c in s] == sorted(cores)  # disjoint, in order, nothing left out
        assert max(map(len, sets)) - min(map(len, sets)) <= 1  # as equal as the count allows
    with pytest.raises(ValueError, match="at least one core each"):
        core_sets(len(cores) + 1, cores)


def test_core_sets_default_to_the_cores_this_process_may_use():
    assert core_sets(1) == [CORES]


@two_cores
def test_each_replica_reports_its_own_job_on_its_own_cores_in_replica_order():
    with ReplicaGroup(_work, ["a", "b"], TINY, LONG, CORES) as group:
        rounds = []
        for _ in range(2):
            group.wait()
            rounds.append(group.collect())
    expected = core_sets(2, CORES)
    for rnd, reports in enumerate(rounds):
        assert [r["job"] for r in reports] == ["a", "b"] and {r["round"] for r in reports} == {rnd}
        assert [r["cores"] for r in reports] == expected  # pinned to its share
        assert [r["threads"] for r in reports] == [len(s) for s in expected]  # one torch thread per core
        assert {r["model"] for r in reports} == {"opt-tiny"}  # the engine was loaded in the replica
    assert all(p.exitcode == 0 for p in group.procs)


@two_cores
def test_a_replica_that_raises_is_reported_with_its_error_and_the_others_are_released():
    group = ReplicaGroup(_work, ["a", "raise"], TINY, LONG, CORES)
    try:
        with pytest.raises(ReplicaFailed) as err:
            group.wait()
    finally:
        group.close()
    # the replica's own error, not "no report ... within timeout_s": it broke the barrier, nobody waited
    # out LONG (a property, so the test holds on a loaded machine)
    assert "replica 1" in str(err.value) and "boom in the replica" in str(err.value)
    assert "within timeout_s" not in str(err.value)
    assert [p.exitcode for p in group.procs] == [0, 0]  # replica 0 left the broken barrier by itself


def test_a_replica_that_dies_silently_breaks_the_barrier_at_once():
    """Without the watchdog the parent would sit in the barrier for LONG seconds and then blame a timeout."""
    with ReplicaGroup(_work, ["die"], TINY, LONG, CORES[:1]) as group, pytest.raises(ReplicaFailed) as err:
        group.wait()
    assert "replica 0 exited with code 3" in str(err.value)  # the watchdog's words, not the timeout's
    assert "within timeout_s" not in str(err.value)
