"""The batching sweep entry point: composed from its real config with tiny overrides, bad input, and a
process killed half-way then rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from common.config import compose, run_task
from common.repo import REPO_ROOT
from common.results import ResultStore
from papers.batching.sweep import main
from tests.papers.batching.helpers import TINY_SWEEP

TINY = ["logger=none", *TINY_SWEEP, "torch_threads=1"]


def test_tiny_sweep_in_process(tmp_path):
    cfg = compose("batching/sweep", [f"paths.results_dir={tmp_path}", *TINY])
    summary = run_task(main.task, cfg, tmp_path / "run")
    [s] = summary
    assert s["device"] == "cpu" and s["batch_ratio"] == 4
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["hardware"].startswith("CPU")
    frame = ResultStore(tmp_path / "batching" / "sweep" / "smoke" / "results.jsonl").load()
    assert sorted(frame["batch_size"]) == [1, 2, 4]


def test_bad_model_name_exits_2_and_leaves_nothing(tmp_path):
    cfg = compose("batching/sweep", [f"paths.results_dir={tmp_path}", *TINY, "models=[gpt-17]"])
    with pytest.raises(SystemExit) as exc:
        run_task(main.task, cfg, tmp_path / "run")
    assert exc.value.code == 2
    assert not (tmp_path / "run").exists()


def test_paper_scale_composes_to_the_paper_grid(tmp_path):
    cfg = compose("batching/sweep", [f"paths.results_dir={tmp_path}", "scale=paper"])
    assert list(cfg.models) == ["opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b"]
    assert max(cfg.batch_sizes) == 512 and cfg.dtype == "fp16"
    assert (cfg.workload.prompt_len, cfg.workload.output_len) == (161, 338)


def test_killed_process_reruns_without_recomputing_finished_cells(tmp_path):
    """SIGKILL after the first cell is stored; the rerun finishes the rest and redoes nothing."""
    args = [
        sys.executable,
        "-m",
        "papers.batching.sweep",
        f"paths.results_dir={tmp_path}",
        *TINY,
        "cooldown_s=2",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    store = ResultStore(tmp_path / "batching" / "sweep" / "smoke" / "results.jsonl")
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not store.rows() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    first = [r["key"] for r in store.rows()]
    assert 1 <= len(first) < 3
    subprocess.run(args[:-1], cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=300)
    rows = store.rows()
    counts = Counter(r["key"] for r in rows)
    assert len(counts) == 3 and all(r["status"] == "ok" for r in rows)
    assert all(counts[key] == 1 for key in first)  # finished cells were not measured again
