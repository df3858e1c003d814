"""What a user finds in wandb with `logger=wandb`, read back from the offline runs: an experiment run
(config, system info, per-cell metrics, its sweep's group) and a paper's figures run."""

import json
import subprocess
import sys

import pytest
import torch

from common import report
from common.config import compose, run_task
from common.repo import REPO_ROOT
from papers.mpt_lml import convergence, figures
from tests.wandb_records import read_offline_run

TINY = ["dims=[4]", "masks_per_size=[1,2]", "replicates=2", "n_data=5", "torch_threads=1"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield
    torch.set_num_threads(1)


def test_experiment_run_logs_config_system_info_and_every_cell(tmp_path):
    cfg = compose("mpt_lml/convergence", [*TINY, "logger=wandb", f"paths.results_dir={tmp_path}"])
    run_dir = tmp_path / "run"
    run_task(convergence.main.task, cfg, run_dir)
    run = read_offline_run(run_dir)
    seen = (
        f"group {run.run.run_group!r}, exits {run.exit_codes}, config {sorted(run.config)}, "
        f"history {sorted(run.history)}"
    )
    assert run.run.run_group == "mpt_lml/convergence/smoke" and run.exit_codes == [0], seen
    assert run.config.get("paper") == "mpt_lml" and run.config.get("dims") == [4], seen
    assert run.config["runinfo"]["hardware"]["device"]  # system info: the device it ran on
    rows = [json.loads(line) for line in (tmp_path / "mpt_lml/convergence/smoke/results.jsonl").open()]
    assert rows and run.history["cell/masks_per_size"] == rows[-1]["cell"]["masks_per_size"]
    assert any(key.startswith("metrics/") for key in run.history)


def _figures_run(tmp_path, *overrides):
    """Tiny convergence results, then the mpt_lml figures command over them (as `make reproduce` ends)."""
    cfg = compose("mpt_lml/convergence", [*TINY, "logger=none", f"paths.results_dir={tmp_path}"])
    run_task(convergence.main.task, cfg, tmp_path / "conv")
    cfg = compose(
        "mpt_lml/figures",
        [f"paths.results_dir={tmp_path}", f"paths.figures_dir={tmp_path / 'figs'}", *overrides],
    )
    run_dir = tmp_path / "figures_run"
    made = run_task(figures.main.task, cfg, run_dir)
    return run_dir, made


def test_figures_run_logs_every_png_under_stable_keys(tmp_path):
    run_dir, made = _figures_run(tmp_path, "logger=wandb")
    run = read_offline_run(run_dir)
    assert run.run.run_group == "mpt_lml/figures/smoke" and run.exit_codes == [0]
    assert run.config["paper"] == "mpt_lml" and run.config["experiment"] == "figures"
    assert {k for k in run.history if k.startswith("figures/")} == {"figures/convergence"}
    assert run.history["figures/convergence"]["_type"] == "image-file"
    assert len(list(run.dir.glob("files/media/images/figures/**/*.png"))) == 1
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    assert [e["name"] for e in events if e["kind"] == "figure"] == ["figures/convergence"]
    assert any(p.endswith("convergence_smoke.png") for p in made)


def test_figures_run_with_the_default_logger_lists_the_files(tmp_path):
    run_dir, _ = _figures_run(tmp_path)
    assert not (run_dir / "wandb").exists() and (run_dir / "runinfo.json").is_file()
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    assert [e["path"] for e in events if e["kind"] == "figure"] == [
        str(tmp_path / "figs/mpt_lml/convergence_smoke.png")
    ]


@pytest.mark.parametrize(
    "args,message",
    [
        (["paths.results_dir=/nonexistent"], "/nonexistent"),
        (["logger=nosuch"], "nosuch"),
        (["scale=huge"], "huge"),
    ],
)
def test_figures_run_bad_input_exits_2(args, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "papers.mpt_lml.figures", f"paths.figures_dir={tmp_path}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_wandb_report_shows_the_figures_the_figures_run_logged(tmp_path, capsys):
    import wandb_workspaces.reports.v2 as wr

    run_dir, _ = _figures_run(tmp_path, "logger=wandb")
    run = read_offline_run(run_dir)
    keys = ["figures/" + p.stem.removesuffix("_smoke") for p in (tmp_path / "figs" / "mpt_lml").glob("*.png")]
    plots = [report.LinePlot("convergence", "cell/masks_per_size", ["metrics/mean"], "MC estimate vs P")]
    blocks = report.report_blocks("mpt_lml", keys, "entity", "project", "report.html", plots)
    panels = [p for b in blocks if isinstance(b, wr.PanelGrid) for p in b.panels]
    (media,) = [p for p in panels if isinstance(p, wr.MediaBrowser)]
    assert sorted(media.media_keys) == sorted(k for k in run.history if k.startswith("figures/"))
    (line,) = [p for p in panels if isinstance(p, wr.LinePlot)]
    assert line.x == "cell/masks_per_size" and line.y == ["metrics/mean"]
    # offline (as here) the Report is not attempted: the HTML report is named instead
    rep = report.Report("mpt_lml", "t", "", [], plots)
    assert report.wandb_report(rep, tmp_path / "report.html", tmp_path / "figs" / "mpt_lml", "smoke") is None
