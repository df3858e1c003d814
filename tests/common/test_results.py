"""The result store: resume, failed cells, torn writes from killed processes, schema errors."""

import json
import math
import signal
import subprocess
import sys
import time

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
    deadline = time.time() + 30
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 200_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = ResultStore(path).rows()  # raises on any malformed complete row
    assert len(rows) >= 5
    assert [r["cell"]["i"] for r in rows] == list(range(len(rows)))
    ResultStore(path).append({"i": "after"}, "ok")
    assert ResultStore(path).rows()[-1]["cell"] == {"i": "after"}


@pytest.mark.parametrize("line, message", [
    ("not json", "not valid JSON"),
    ('[1, 2]', "must be a JSON object"),
    ('{"key": "k", "cell": {}}', "lacks field(s) ['status']"),
    ('{"key": "k", "cell": {}, "status": "maybe"}', "is not ok/failed"),
])
def test_schema_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    good = json.dumps({"key": cell_key({"a": 1}), "cell": {"a": 1}, "status": "ok"})
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ResultStoreError) as err:
        ResultStore(path).load()
    assert f"{path}:2" in str(err.value) and message in str(err.value)
