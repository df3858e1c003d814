"""The entry points end to end on tiny settings: detect, the resumable grid, the benchmark, figures."""

import json
from pathlib import Path

import pandas as pd
import pytest

from common.config import compose, run_task
from common.results import ResultStore
from papers.frida import bench, detect, figures, grid, report

TINY = ["fed.num_clients=4", "fed.rounds=2", "fed.num_free_riders=1", "logger=none"]


def test_detect_writes_records_and_a_summary(tmp_path):
    cfg = compose("frida/detect", [f"paths.results_dir={tmp_path}", *TINY])
    metrics = run_task(detect.main.task, cfg, tmp_path / "run")
    assert 0.0 <= metrics["auc.mia_loss"] <= 1.0 and "f1_by_round.vote" in metrics
    rows = [json.loads(line) for line in (tmp_path / "run" / "clients.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all("score.std_dagmm" in r for r in rows)
    store = ResultStore(tmp_path / "frida" / "detect" / "smoke" / "results.jsonl")
    assert store.load()["status"].tolist() == ["ok"]


def test_grid_resumes_records_a_failed_cell_and_feeds_the_figures(tmp_path):
    # with 12 clients and 10 classes, alpha=1e-9 leaves some client empty every time: flwr-datasets
    # gives up, that cell fails, the rest runs
    overrides = [
        f"paths.results_dir={tmp_path}",
        *TINY,
        "fed.num_clients=12",
        "free_riders=[plain,gradient_noiser]",
        "partitions=['iid','0.1','1e-9']",
        "num_free_riders=[1]",
        "seeds=[0]",
        "mitigation_partitions=['0.1']",
        "mitigation_num_free_riders=[1]",
        "workers=1",
    ]
    run_task(grid.main.task, compose("frida/grid", overrides), tmp_path / "run1")
    store = ResultStore(tmp_path / "frida" / "grid" / "smoke" / "results.jsonl")
    all_rows = store.load(status=None)
    assert len(all_rows) == 2 * 3 + 1 + 2  # detection cells + clean reference + mitigated cells
    failed = all_rows[all_rows["status"] == "failed"]
    assert set(failed["partition"]) == {"1e-9"} and failed["error"].str.contains("dirichlet").all()
    finished = len(store.rows())
    with pytest.raises(SystemExit) as exit_:  # the rerun computes only the failed cells, which fail again:
        run_task(grid.main.task, compose("frida/grid", overrides), tmp_path / "run2")
    assert exit_.value.code == 1  # a run whose every cell failed exits 1
    rows = store.rows()
    assert len(rows) == finished + len(failed)  # only the failed cells ran again
    out = tmp_path / "figs"
    cfg = compose(
        "frida/figures", [f"paths.results_dir={tmp_path}", f"paths.figures_dir={out}", "logger=none"]
    )
    run_task(figures.main.task, cfg, tmp_path / "run3")
    for name in ("detector_auc", "f1_by_round", "accuracy_mitigation"):
        assert (out / "frida" / f"{name}_smoke.png").stat().st_size > 0
    table = (out / "frida" / "auc_table_smoke.md").read_text()
    assert "gradient_noiser" in table and "mia_loss" in table
    assert " / " in table.splitlines()[2]  # baselines: designed / flipped
    assert "FRIDA wins" in (out / "frida" / "wins_smoke.md").read_text()
    # cells finish in any order (a parallel grid): the same cells in reverse order give the same files
    before = figures.load_store(tmp_path / "frida", "grid", "smoke")
    lines = store.path.read_text().splitlines(keepends=True)
    store.path.write_text("".join(reversed(lines)))
    pd.testing.assert_frame_equal(figures.load_store(tmp_path / "frida", "grid", "smoke"), before)
    again = tmp_path / "figs_reversed"
    cfg = compose(
        "frida/figures", [f"paths.results_dir={tmp_path}", f"paths.figures_dir={again}", "logger=none"]
    )
    run_task(figures.main.task, cfg, tmp_path / "run3r")
    drawn = sorted(p.name for p in (out / "frida").iterdir())
    assert drawn == sorted(p.name for p in (again / "frida").iterdir())
    assert all((out / "frida" / n).read_bytes() == (again / "frida" / n).read_bytes() for n in drawn)
    # the report computes its tables from the same store: the per-setting verdicts and the figures
    cfg = compose(
        "frida/report", [f"paths.results_dir={tmp_path}", f"paths.figures_dir={out}", "logger=none"]
    )
    html = Path(run_task(report.main.task, cfg, tmp_path / "run4")).read_text()
    assert "FRIDA wins" in html and "gradient_noiser" in html and "detector_auc" in html


def test_a_malformed_partition_label_is_bad_input(tmp_path):
    cfg = compose("frida/grid", [f"paths.results_dir={tmp_path}", *TINY, "partitions=['0.1','dense']"])
    with pytest.raises(SystemExit) as err:
        run_task(grid.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2 and not (tmp_path / "run").exists()


def test_figures_without_results_exit_2(tmp_path, caplog):
    cfg = compose(
        "frida/figures",
        [f"paths.results_dir={tmp_path}", f"paths.figures_dir={tmp_path / 'f'}", "logger=none"],
    )
    with pytest.raises(SystemExit) as err:
        run_task(figures.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2 and "grid" in caplog.text and not (tmp_path / "run").exists()


def test_grid_with_one_worker_skips_a_cell_another_run_finished(tmp_path):
    """run_cell returns None for a cell finished elsewhere between listing and claiming; the grid counts
    it as done instead of failing (it used to raise TypeError)."""
    from types import SimpleNamespace

    from papers.frida.grid import run_cells

    store = ResultStore(tmp_path / "results.jsonl")
    cell = {"x": 1}
    store.append(cell, "ok", {"auc.l2": 0.5})  # the other run's row
    run = SimpleNamespace(results=store)
    assert run_cells(run, [(cell, "{}")], workers=1, label="t") == 0
    assert len(store.rows()) == 1


def test_a_cell_claimed_by_a_live_run_is_left_to_it_with_several_workers(tmp_path):
    from types import SimpleNamespace

    from papers.frida.grid import run_cells

    store = ResultStore(tmp_path / "results.jsonl")
    run = SimpleNamespace(results=store)
    cell = {"x": 2}
    with store.claim(cell) as mine:  # held by a live process (this one, standing for another run)
        assert mine
        assert run_cells(run, [(cell, "{}")], workers=2, label="t") == 0
    assert store.rows() == [] and store.claimed_elsewhere == [cell]


def test_bench_reports_overhead_against_training(tmp_path):
    cfg = compose(
        "frida/bench",
        [
            f"paths.results_dir={tmp_path}",
            *TINY,
            "repeats=2",
            "canary_modes=[every_batch]",
            "fed.detectors=[mia_loss,mia_grad,l2]",
        ],
    )
    table = pd.DataFrame(run_task(bench.main.task, cfg, tmp_path / "run")["overhead"])
    assert list(table["detector"])[:3] == ["mia_loss", "mia_grad", "l2"]
    assert (table["seconds_per_round"] > 0).all()
    train = table[table["detector"].str.startswith("client training")]
    assert float(train["ratio_to_training"].iloc[0]) == 1.0
