"""jobs/render.py without a cluster: what goes into a script, and its guards run under plain bash."""

import os
import subprocess
import sys

import pytest

from common.errors import BadInput
from common.repo import REPO_ROOT
from jobs.render import render_experiment

PY = sys.executable


@pytest.fixture
def site(tmp_path, monkeypatch):
    def write(text: str):
        path = tmp_path / "site.yaml"
        path.write_text(text)
        monkeypatch.setenv("JOBS_SITE", str(path))
        return path

    return write


def _sbatch_lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("#SBATCH")]


def test_site_values_per_profile(tmp_path, site):
    site("partition: {cpu: gpp, gpu1: acc}\naccount: bsc99\nqos: {gpu1: acc_debug}\n")
    cpu = _sbatch_lines(render_experiment("batching", "sweep", [], tmp_path / "cpu").path)
    gpu = _sbatch_lines(render_experiment("batching", "sweep", ["scale=paper"], tmp_path / "gpu").path)
    assert "#SBATCH --partition=gpp" in cpu and "#SBATCH --account=bsc99" in cpu
    assert not any("--qos" in line or "--gres" in line for line in cpu)
    assert {
        "#SBATCH --partition=acc",
        "#SBATCH --account=bsc99",
        "#SBATCH --qos=acc_debug",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=120G",
    } <= set(gpu)


def test_bad_site_value_names_its_key(tmp_path, site, monkeypatch):
    site("partition: [acc, gpp]\n")
    with pytest.raises(BadInput, match="'partition'"):
        render_experiment("batching", "sweep", [], tmp_path)
    monkeypatch.setenv("JOBS_SITE", str(tmp_path / "missing.yaml"))
    with pytest.raises(BadInput, match="missing.yaml"):
        render_experiment("batching", "sweep", [], tmp_path)


def test_vllm_experiments_run_in_the_vllm_environment(tmp_path, site):
    site("{}\n")
    hf = render_experiment("slm_energy", "benchmark", [], tmp_path / "hf").path.read_text()
    vllm = render_experiment("slm_energy", "benchmark", ["engine=vllm"], tmp_path / "vllm").path.read_text()
    assert ".venv/bin/python -m papers.slm_energy.benchmark" in hf and ".venv-vllm" not in hf
    assert ".venv-vllm/bin/python -m papers.slm_energy.benchmark" in vllm and "make setup-vllm" in vllm


@pytest.mark.parametrize("engine,message", [("vllm", "make setup-vllm"), ("hf", "make setup")])
def test_guard_stops_a_job_without_its_environment(tmp_path, site, engine, message):
    site("{}\n")
    script = render_experiment("slm_energy", "benchmark", [f"engine={engine}"], tmp_path).path
    submit_dir = tmp_path / "checkout-without-venv"
    submit_dir.mkdir()
    env = {**os.environ, "SLURM_SUBMIT_DIR": str(submit_dir), "SLURM_JOB_ID": "1"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and f"run '{message}'" in proc.stderr, proc.stderr


def test_guard_names_a_missing_environment_variable(tmp_path, site):
    site("{}\n")
    script = render_experiment(
        "slm_energy", "benchmark", ["job.require_env=[HF_TOKEN_FOR_TEST]"], tmp_path
    ).path
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN_FOR_TEST"}
    env.update(SLURM_SUBMIT_DIR=str(REPO_ROOT), SLURM_JOB_ID="1")
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "HF_TOKEN_FOR_TEST is required" in proc.stderr, proc.stderr


def test_overrides_reach_the_experiments_that_have_their_key(tmp_path):
    proc = subprocess.run(
        [PY, "-m", "jobs.render", "paper=batching", f"out={tmp_path}", "engine=vllm"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    sweep, study = (tmp_path / "sweep.sbatch").read_text(), (tmp_path / "study.sbatch").read_text()
    assert ".venv-vllm/bin/python -m papers.batching.sweep scale=paper engine=vllm" in sweep
    assert ".venv/bin/python -m papers.batching.study scale=paper" in study and "engine" not in study


def test_an_override_no_experiment_has_exits_2_naming_it(tmp_path):
    proc = subprocess.run(
        [PY, "-m", "jobs.render", "paper=batching", f"out={tmp_path}", "engnie=vllm"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "engnie" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.sbatch"))


@pytest.mark.parametrize(
    "launcher,profile", [("slurm_cpu", "cpu"), ("slurm_1gpu", "gpu1"), ("slurm_4gpu", "gpu4")]
)
def test_launcher_profiles_ask_for_what_the_sbatch_profiles_do(launcher, profile, tmp_path, site):
    """A multirun through submitit and a generated script of the same profile get the same node share:
    both read conf/slurm/profiles.yaml."""
    import papers.batching.config  # noqa: F401 - registers the schema
    from common import slurm
    from common.config import compose

    cfg = compose("batching/sweep", [f"hydra/launcher={launcher}"], hydra_config=True)
    launched = cfg.hydra.launcher
    site("{}\n")
    script = render_experiment("batching", "sweep", [f"job.profile={profile}"], tmp_path).path
    lines = _sbatch_lines(script)
    want = slurm.profile(profile)
    assert (launched.cpus_per_task, launched.gpus_per_node, launched.mem_gb, launched.timeout_min) == (
        want["cpus_per_task"],
        want["gpus"],
        want["mem_gb"],
        want["time_min"],
    )
    assert f"#SBATCH --cpus-per-task={want['cpus_per_task']}" in lines
    assert f"#SBATCH --mem={want['mem_gb']}G" in lines
    assert f"#SBATCH --time={slurm.sbatch_time(want['time_min'])}" in lines
    assert (f"#SBATCH --gres=gpu:{want['gpus']}" in lines) == bool(want["gpus"])
