"""The result store: resume, failed cells, torn writes from killed processes, schema errors."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.results import ResultStore, ResultStoreError, cell_key


def test_resume_skips_finished_cells(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    calls = []
    for b in (1, 2, 4):
        store.run_cell({"batch": b, "model": "m"}, lambda b=b: calls.append(b) or {"tput": 10.0 * b})
    for b in (1, 2, 4, 8):
        store.run_cell({"model": "m", "batch": b}, lambda b=b: calls.append(b) or {"tput": 10.0 * b})
    assert calls == [1, 2, 4, 8]  # key order in the cell does not matter
    df = store.load()
    assert sorted(df["batch"]) == [1, 2, 4, 8]
    assert df.set_index("batch").loc[4, "tput"] == 40.0


def test_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")

    def boom():
        raise MemoryError("CUDA out of memory at batch 512")

    store.run_cell({"batch": 512}, boom)
    store.run_cell({"batch": 1}, lambda: {"tput": 1.0})
    failed = store.load(status="failed")
    assert list(failed["batch"]) == [512]
    assert "out of memory" in failed["error"].iloc[0]
    assert not store.done({"batch": 512})
    assert store.done({"batch": 512}, include_failed=True)
    # a retry that succeeds replaces the failure: the last row of a key wins
    store.run_cell({"batch": 512}, lambda: {"tput": 5.0})
    assert store.done({"batch": 512})
    assert store.load(status="failed").empty


def test_nan_is_stored_as_null(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append({"a": 1}, "ok", metrics={"energy_j": math.nan, "x": 1.5})
    row = json.loads((tmp_path / "r.jsonl").read_text())
    assert row["metrics"] == {"energy_j": None, "x": 1.5}


def test_torn_tail_is_skipped_then_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    store.append({"i": 0}, "ok", metrics={"v": 0})
    with open(path, "ab") as fh:
        fh.write(b'{"key": "{\\"i\\":1}", "cell": {"i": 1}, "sta')  # a writer killed mid-row
    assert [r["cell"] for r in store.rows()] == [{"i": 0}]
    store.append({"i": 2}, "ok", metrics={"v": 2})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["cell"]["i"] for line in lines] == [0, 2]


WRITER = """
import sys
from common.results import ResultStore
store = ResultStore(sys.argv[1])
i = 0
while True:
    store.append({"i": i}, "ok", metrics={"payload": "x" * 20000})
    i += 1
"""


def test_kill_during_writes_leaves_only_whole_rows(tmp_path):
    path = tmp_path / "r.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    deadline = time.time() + 300  # a wait bound: the writer may start slowly on a busy machine
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 200_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = ResultStore(path).rows()  # raises on any malformed complete row
    assert len(rows) >= 5
    assert [r["cell"]["i"] for r in rows] == list(range(len(rows)))
    ResultStore(path).append({"i": "after"}, "ok")
    assert ResultStore(path).rows()[-1]["cell"] == {"i": "after"}


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"key": "k", "cell": {}}', "lacks field(s) ['status']"),
        ('{"key": "k", "cell": {}, "status": "maybe"}', "is not ok/failed"),
    ],
)
def test_schema_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    good = json.dumps({"key": cell_key({"a": 1}), "cell": {"a": 1}, "status": "ok"})
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ResultStoreError) as err:
        ResultStore(path).load()
    assert f"{path}:2" in str(err.value) and message in str(err.value)


# ---- claims: a cell is computed once, however many runs share the store ------------------------------
WORKER = """
import json, os, sys, time
from common.results import ResultStore
store = ResultStore(sys.argv[1])
log = sys.argv[2]
def work(i):
    with open(log, "a") as fh:
        fh.write(json.dumps({"i": i, "pid": os.getpid()}) + "\\n")
    time.sleep(0.15)
    return {"v": i}
for i in range(10):
    store.run_cell({"i": i}, lambda i=i: work(i))
"""


def test_two_concurrent_runs_compute_each_cell_once(tmp_path):

    store, log = tmp_path / "results.jsonl", tmp_path / "executions.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(store), str(log)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["i"] for r in runs) == list(range(10))  # every cell once, none twice
    assert len({r["pid"] for r in runs}) == 2  # and both runs did some of the work
    rows = ResultStore(store).rows()
    assert sorted(r["cell"]["i"] for r in rows) == list(range(10))
    assert not list(ResultStore(store).claims_dir.glob("*.claim"))  # claims are released


def _dead_pid() -> int:

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _claim(store: ResultStore, cell: dict, **owner) -> Path:
    path = store._claim_path(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(owner))
    return path


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    import socket

    store = ResultStore(tmp_path / "results.jsonl")
    _claim(store, {"i": 1}, host=socket.gethostname(), pid=_dead_pid())
    row = store.run_cell({"i": 1}, lambda: {"v": 1})
    assert row is not None and row["status"] == "ok"


def test_a_claim_of_a_live_process_is_left_to_it(tmp_path):
    import socket

    store = ResultStore(tmp_path / "results.jsonl")
    holder = subprocess.Popen(["sleep", "30"])
    try:
        _claim(store, {"i": 1}, host=socket.gethostname(), pid=holder.pid)
        assert store.run_cell({"i": 1}, lambda: {"v": 1}) is None
        assert store.claimed_elsewhere == [{"i": 1}] and store.rows() == []
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_from_another_host_expires_after_its_lease(tmp_path):
    import os

    store = ResultStore(tmp_path / "results.jsonl", lease_s=60)
    path = _claim(store, {"i": 1}, host="another-node", pid=1)
    assert store.run_cell({"i": 1}, lambda: {"v": 1}) is None  # fresh: its owner may be alive
    os.utime(path, (path.stat().st_mtime - 120,) * 2)  # not refreshed for two leases
    assert store.run_cell({"i": 1}, lambda: {"v": 1})["status"] == "ok"
