"""The grid as processes see it: two grids on one store compute each cell once, and a grid killed with
SIGKILL takes its worker processes with it. Both start real subprocesses: marked slow."""

import json
import subprocess
import sys
import time

import psutil
import pytest

from common.repo import REPO_ROOT

SMALL = [
    "fed.num_clients=4",
    "fed.rounds=2",
    "fed.num_free_riders=1",
    "free_riders=[plain,gradient_noiser]",
    "partitions=['iid','0.1']",
    "num_free_riders=[1]",
    "seeds=[0]",
    "mitigation_partitions=[]",
    "mitigation_num_free_riders=[]",
    "logger=none",
]


def _grid(tmp_path, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "papers.frida.grid", f"paths.results_dir={tmp_path}", *SMALL, *extra],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_two_grids_on_one_store_compute_each_cell_once(tmp_path):
    first, second = _grid(tmp_path, "workers=2"), _grid(tmp_path, "workers=1")
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0
    store = tmp_path / "frida" / "grid" / "smoke" / "results.jsonl"
    keys = [json.loads(line)["key"] for line in store.read_text().splitlines()]
    assert len(keys) == 4 and len(set(keys)) == 4  # 2 kinds x 2 partitions, one row each


def _workers(pid: int) -> list[int]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]


@pytest.mark.slow
def test_sigkill_of_the_grid_takes_its_workers_with_it(tmp_path):
    grid = _grid(tmp_path, "workers=2", "fed.rounds=50")
    deadline = time.monotonic() + 300
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = _workers(grid.pid)
        time.sleep(0.5)
    assert len(workers) == 2, "the grid never started its two workers"
    grid.kill()
    grid.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in workers
    ):
        time.sleep(0.5)
    alive = [
        p for p in workers if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not alive, f"workers {alive} outlived the grid"
