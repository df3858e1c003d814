"""Each paper's main sweep as wandb shows it, read back offline: its cells as a table, the sweep axis
as the step metric of every metric, the results artifact; and the paper's wandb Report spec, built
offline, plots logged metrics against that same axis (a panel naming a key no run logs stays empty)."""

import importlib

import pytest
import torch

from common import report
from common.config import compose, run_task
from jobs.routing import App, load
from tests.papers.batching.helpers import TINY_SWEEP
from tests.papers.slm_energy.test_benchmark import TINY as TINY_BENCHMARK
from tests.test_wandb_runs import TINY as TINY_CONVERGENCE
from tests.wandb_records import read_offline_run, records

RUNS = {  # paper: (the experiment a Report plot draws, its tiny overrides; logger=wandb comes after)
    "batching": ("sweep", TINY_SWEEP),
    "slm_energy": ("benchmark", TINY_BENCHMARK),
    "frida": (
        "research",
        [
            "datasets=[digits]",
            "fed.num_clients=4",
            "fed.rounds=2",
            "fed.fraction_train=1.0",
            "free_riders=[gradient_noiser]",
            "partitions=['iid']",
            "num_free_riders=[1]",
            "seeds=[0]",
            "workers=1",
        ],
    ),
    "mpt_lml": ("convergence", TINY_CONVERGENCE),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield
    torch.set_num_threads(1)


@pytest.mark.parametrize("paper", sorted(RUNS))
def test_the_papers_sweep_in_wandb_and_its_report_plots(paper, tmp_path):
    import wandb_workspaces.reports.v2 as wr

    experiment, tiny = RUNS[paper]
    task = load(App(f"{paper}/{experiment}")).task  # registers the schema, as the pipeline does
    cfg = compose(
        f"{paper}/{experiment}", [*tiny, "logger=wandb", "torch_threads=1", f"paths.results_dir={tmp_path}"]
    )
    run_task(task, cfg, tmp_path / "run")
    run = read_offline_run(tmp_path / "run")
    recs = records(next(run.dir.glob("run-*.wandb")))
    step_metric = {
        r.metric.name or r.metric.glob_name: r.metric.step_metric
        for r in recs
        if r.WhichOneof("record_type") == "metric"
    }
    assert run.history["cells"]["_type"] == "table-file" and run.history["cells"]["nrows"] >= 1
    artifacts = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact"]
    assert [a.name for a in artifacts if a.type == "results"] == [f"{paper}-{experiment}-smoke"]

    built = importlib.import_module(f"papers.{paper}.report").build
    args = (tmp_path, "smoke") if paper != "slm_energy" else (tmp_path, "smoke", tmp_path / "figures")
    (plot,) = [p for p in built(*args).plots if p.experiment == experiment]
    assert step_metric["metrics/*"] == plot.x  # the Report's x axis is the one the run defined
    assert plot.x in run.history and set(plot.y) <= set(run.history)  # every key the panel draws is logged
    blocks = report.report_blocks(paper, [], "entity", "project", "report.html", [plot])
    (line,) = [
        p for b in blocks if isinstance(b, wr.PanelGrid) for p in b.panels if isinstance(p, wr.LinePlot)
    ]
    assert line.x == plot.x and line.y == plot.y
