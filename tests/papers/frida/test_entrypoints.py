"""The entry points end to end on tiny settings: detect, the resumable grid, the benchmark, figures."""

import json

import pandas as pd
import pytest

from common.config import compose, run_task
from common.results import ResultStore
from papers.frida import bench, detect, figures, grid

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
    overrides = [f"paths.results_dir={tmp_path}", *TINY, "fed.num_clients=12",
                 "free_riders=[plain,gradient_noiser]",
                 "partitions=['iid','0.1','1e-9']", "num_free_riders=[1]", "seeds=[0]",
                 "mitigation_partitions=['0.1']", "mitigation_num_free_riders=[1]", "workers=1"]
    run_task(grid.main.task, compose("frida/grid", overrides), tmp_path / "run1")
    store = ResultStore(tmp_path / "frida" / "grid" / "smoke" / "results.jsonl")
    all_rows = store.load(status=None)
    assert len(all_rows) == 2 * 3 + 1 + 2  # detection cells + clean reference + mitigated cells
    failed = all_rows[all_rows["status"] == "failed"]
    assert set(failed["partition"]) == {"1e-9"} and failed["error"].str.contains("dirichlet").all()
    finished = len(store.rows())
    run_task(grid.main.task, compose("frida/grid", overrides), tmp_path / "run2")
    rows = store.rows()
    assert len(rows) == finished + len(failed)  # only the failed cells ran again
    out = tmp_path / "figs"
    cfg = compose("frida/figures", [f"paths.results_dir={tmp_path}", f"paths.figures_dir={out}", "logger=none"])
    run_task(figures.main.task, cfg, tmp_path / "run3")
    for name in ("auc_vs_alpha", "f1_by_round", "accuracy_mitigation"):
        assert (out / "frida" / f"{name}_smoke.png").stat().st_size > 0
    table = (out / "frida" / "auc_table_smoke.md").read_text()
    assert "gradient_noiser" in table and "mia_loss" in table


def test_a_malformed_partition_label_is_bad_input(tmp_path):
    cfg = compose("frida/grid", [f"paths.results_dir={tmp_path}", *TINY, "partitions=['0.1','dense']"])
    with pytest.raises(SystemExit) as err:
        run_task(grid.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2 and not (tmp_path / "run").exists()


def test_figures_without_results_exit_2(tmp_path, caplog):
    cfg = compose("frida/figures", [f"paths.results_dir={tmp_path}", f"paths.figures_dir={tmp_path / 'f'}",
                                    "logger=none"])
    with pytest.raises(SystemExit) as err:
        run_task(figures.main.task, cfg, tmp_path / "run")
    assert err.value.code == 2 and "grid" in caplog.text and not (tmp_path / "run").exists()


def test_bench_reports_overhead_against_training(tmp_path):
    cfg = compose("frida/bench", [f"paths.results_dir={tmp_path}", *TINY, "repeats=2",
                                  "fed.detectors=[mia_loss,mia_grad,l2]"])
    table = pd.DataFrame(run_task(bench.main.task, cfg, tmp_path / "run"))
    assert list(table["detector"])[:3] == ["mia_loss", "mia_grad", "l2"]
    assert (table["seconds_per_round"] > 0).all()
    train = table[table["detector"].str.startswith("client training")]
    assert float(train["ratio_to_training"].iloc[0]) == 1.0
