"""jobs.pipeline: a paper's steps declared once, overrides routed by the steps' own configs, run here."""

import json
import subprocess
import sys

import pytest

from common.errors import BadInput
from common.repo import PAPERS, REPO_ROOT
from jobs import pipeline
from jobs.routing import App, route

PY = sys.executable


def _pipeline(*args, timeout=600):
    return subprocess.run(
        [PY, "-m", "jobs.pipeline", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_an_override_reaches_only_the_steps_that_have_its_key():
    apps = [App("batching/sweep"), App("batching/study"), App("batching/replicate"), App("batching/figures")]
    shares = route(apps, ["engine=vllm", "scale=paper", "workload.output_len=64", "logger=wandb"])
    assert shares == [
        ["engine=vllm", "scale=paper", "workload.output_len=64", "logger=wandb"],
        ["scale=paper", "logger=wandb"],
        ["engine=vllm", "scale=paper", "workload.output_len=64", "logger=wandb"],
        ["scale=paper", "logger=wandb"],
    ]


def test_hydra_launcher_choice_reaches_every_step():
    apps = [App("mpt_lml/curve"), App("mpt_lml/figures")]
    assert route(apps, ["hydra/launcher=slurm_cpu"]) == [["hydra/launcher=slurm_cpu"]] * 2


@pytest.mark.parametrize("override,named", [("scael=paper", "scael"), ("dims=[4]", "dims")])
def test_an_override_no_step_takes_is_bad_input(override, named):
    with pytest.raises(BadInput, match=named):
        route([App("batching/sweep"), App("batching/study")], [override])


def test_a_bad_value_fails_before_any_step_runs(tmp_path):
    proc = _pipeline("pipeline=mpt_lml", "seed=abc", f"paths.results_dir={tmp_path}")
    assert proc.returncode == 2 and "seed" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args,named",
    [
        ([], "pipeline=<name>"),
        (["pipeline=nosuch"], "pipeline=<name>"),
        (["pipeline=frida", "launcher=cloud"], "launcher"),
        (["pipeline=frida", "only=[frida/nosuch]"], "frida/nosuch"),
    ],
)
def test_bad_pipeline_settings_exit_2(args, named):
    proc = _pipeline(*args)
    assert proc.returncode == 2 and named in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("paper", PAPERS)
def test_every_pipeline_plans(paper):
    cfg, apps, shares = pipeline.plan([f"pipeline={paper}", "scale=paper"])
    assert cfg.name == paper and apps[-1].config == f"{paper}/report"
    assert f"{paper}/figures" in [a.config for a in apps]
    assert all("scale=paper" in share for share in shares)


def test_local_run_runs_the_steps_in_order_and_the_figures_see_them(tmp_path):
    results, figures = tmp_path / "results", tmp_path / "figures"
    proc = _pipeline(
        "pipeline=mpt_lml",
        "only=[mpt_lml/convergence,mpt_lml/figures]",
        "dims=[4]",
        "masks_per_size=[1,2]",
        "replicates=2",
        "n_data=5",
        "logger=none",
        f"paths.results_dir={results}",
        f"paths.figures_dir={figures}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.index("papers.mpt_lml.convergence") < proc.stdout.index("papers.mpt_lml.figures")
    summary = json.loads((results / "mpt_lml/convergence/smoke/summary.json").read_text())
    assert summary["rows"] and (figures / "mpt_lml" / "convergence_smoke.png").is_file()


def test_a_failing_step_stops_the_chain_with_its_status(tmp_path):
    proc = _pipeline(
        "pipeline=mpt_lml",
        "only=[mpt_lml/convergence,mpt_lml/figures]",
        "dims=[4]",
        "masks_per_size=[1]",
        "replicates=2",
        "logger=none",
        "torch_threads=0",
        f"paths.results_dir={tmp_path}",
        f"paths.figures_dir={tmp_path / 'figures'}",
    )
    assert proc.returncode != 0 and "mpt_lml/convergence" in proc.stderr
    assert "step 1/2" in proc.stdout and "step 2/2" not in proc.stdout  # the figures never started
    assert not (tmp_path / "figures").exists()
