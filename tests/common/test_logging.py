"""The experiment logger: jsonl always, wandb offline read back from its own run files."""

import json

import pytest

from common.logging import ExperimentLogger
from common.plotting import FigureOut, new_figure, save
from tests.wandb_records import read_offline_run


def test_jsonl_backend_records_scalars_tables_figures(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    png, pdf = save(fig, "line", FigureOut(tmp_path / "figs", "smoke"), source="CPU test")
    assert png.name == "line_smoke.png" and png.stat().st_size > 0 and pdf.read_bytes().startswith(b"%PDF")
    logger = ExperimentLogger.from_config({"backend": "jsonl"}, tmp_path, config={})
    logger.log({"loss": 0.5, "nan": float("nan")}, step=3)
    logger.table("cells", [{"batch": 1, "tput": 2.0}])
    logger.figure("line", png)
    logger.finish(0)
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["scalars", "table", "figure", "finish"]
    assert events[0]["values"] == {"loss": 0.5, "nan": None} and events[0]["step"] == 3
    assert events[1]["records"] == [{"batch": 1, "tput": 2.0}]
    assert events[3]["exit_code"] == 0


def test_none_backend_writes_nothing(tmp_path):
    logger = ExperimentLogger.from_config({"backend": "none"}, tmp_path, config={})
    logger.log({"x": 1})
    logger.finish()
    assert not (tmp_path / "metrics.jsonl").exists()


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(ValueError, match="none, jsonl or wandb"):
        ExperimentLogger.from_config({"backend": "tensorboard"}, tmp_path, config={})


@pytest.mark.parametrize("exit_code", [0, 1])
def test_wandb_offline_run_reads_back(tmp_path, monkeypatch, exit_code):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = ExperimentLogger.from_config(
        {"backend": "wandb", "wandb_project": "t"},
        tmp_path,
        config={"model": "opt-tiny"},
        group="demo/exp/smoke",
    )
    logger.log({"throughput": 123.5}, step=0)
    logger.finish(exit_code)  # the entry point finishes with 1 when the task raised
    assert (tmp_path / "metrics.jsonl").exists()  # jsonl stays on beside wandb
    run = read_offline_run(tmp_path)
    assert run.history["throughput"] == 123.5
    assert run.run.run_group == "demo/exp/smoke" and run.config["model"] == "opt-tiny"
    assert run.exit_codes == [exit_code]


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    """PNG and PDF carry no date, so figures rebuilt from the same results are byte-identical."""
    outs = []
    for run in ("a", "b"):
        fig, ax = new_figure()
        ax.plot([0, 1], [1, 0])
        outs.append([p.read_bytes() for p in save(fig, "line", FigureOut(tmp_path / run, "smoke"))])
    assert outs[0] == outs[1]


def test_a_scalar_named_cells_is_refused_as_the_cells_table_owns_the_key(tmp_path):
    logger = ExperimentLogger.from_config({"backend": "jsonl"}, tmp_path, {})
    with pytest.raises(ValueError, match="'cells' is the run's table"):
        logger.log({"cells": 3})
    logger.log({"grid/cells": 3})
    logger.finish(0)


def test_a_figure_with_an_empty_panel_is_refused_and_nothing_is_written(tmp_path):
    fig, axes = new_figure(1, 3)
    axes[0].plot([0, 1], [1, 0])
    axes[1].set_title("energy per token")  # a frame with only a title: empty
    axes[2].axis("off")  # a panel turned off (a legend's place) is not a panel
    with pytest.raises(ValueError, match="figure line: empty panel\\(s\\) 'energy per token'"):
        save(fig, "line", FigureOut(tmp_path, "smoke"))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
