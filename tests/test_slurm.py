"""The cluster path against a real SLURM (jobs/local_cluster.sh, started by .ci/run).

Uses the mpt_lml convergence experiment at a tiny size: it writes through the result store, so
requeue and resume are observable cell by cell.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.repo import PAPERS, REPO_ROOT
from common.results import ResultStore
from jobs import submit as jobs_submit
from jobs.render import render_experiment

pytestmark = pytest.mark.slurm
PY = sys.executable
MODULE = "papers.mpt_lml.convergence"


def _cluster_up() -> str | None:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (.ci/run installs slurm-wlm and starts jobs/local_cluster.sh)"
    if not os.environ.get("SLURM_CONF"):
        return "SLURM_CONF is not set: start the cluster with jobs/local_cluster.sh start"
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        return "no slurmctld answers scontrol ping"
    return None


if reason := _cluster_up():
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=reason)]


def _tiny(results: Path, **extra) -> list[str]:
    values = {
        "dims": "[5]",
        "masks_per_size": "[1,2]",
        "replicates": "3",
        "logger": "none",
        "paths.results_dir": str(results),
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def _sbatch(script: Path, *args: str) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", str(script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().split(";")[0]


def _store(results: Path) -> ResultStore:
    return ResultStore(results / "mpt_lml" / "convergence" / "smoke" / "results.jsonl")


@pytest.fixture
def local_site(monkeypatch):
    """jobs/local_cluster.sh writes the site values of its partitions beside its slurm.conf."""
    site = Path(os.environ["SLURM_CONF"]).parent / "site.yaml"
    assert site.is_file(), f"{site}: the local cluster writes it on start"
    monkeypatch.setenv("JOBS_SITE", str(site))
    return site


def _test_only(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sbatch", "--test-only", str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("paper", PAPERS)
def test_make_jobs_scripts_pass_sbatch_test_only(paper, tmp_path, local_site):
    # what `make jobs-<paper>` runs, at each experiment's own profile: the local node poses as an
    # 80-core, 4-GPU node, so the gpu1 scripts are judged at their real size
    proc = subprocess.run(
        [PY, "-m", "jobs.render", f"paper={paper}", f"out={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    scripts = sorted(tmp_path.glob("*.sbatch"))
    assert len(scripts) == len(list((REPO_ROOT / "conf" / paper).glob("*.yaml")))
    for script in scripts:
        result = _test_only(script)
        assert result.returncode == 0, (script, result.stderr)
        partition = "gpu" if "--gres=gpu" in script.read_text() else "debug"
        assert f"in partition {partition}" in result.stderr, (script, result.stderr)


def test_test_only_judges_resources(tmp_path, local_site):
    """A 4-GPU script passes; asking for one GPU too many, or the CPU partition, is refused."""
    rendered = render_experiment("batching", "sweep", ["scale=paper", "job.profile=gpu4"], tmp_path)
    text = rendered.path.read_text()
    assert "#SBATCH --gres=gpu:4" in text and "#SBATCH --partition=gpu" in text
    assert _test_only(rendered.path).returncode == 0
    for bad in (
        text.replace("--gres=gpu:4", "--gres=gpu:5"),
        text.replace("--partition=gpu", "--partition=debug"),
    ):
        script = tmp_path / "bad.sbatch"
        script.write_text(bad)
        result = _test_only(script)
        assert result.returncode != 0 and "not available" in result.stderr, result.stderr


def test_generated_script_runs_a_smoke_experiment(tmp_path):
    rendered = render_experiment("mpt_lml", "convergence", ["scale=smoke", *_tiny(tmp_path)], tmp_path)
    job = _sbatch(rendered.path)
    assert jobs_submit.wait([job], timeout_min=5, poll_s=1) == 0
    rows = _store(tmp_path).rows()
    estimators = {r["cell"]["estimator"] for r in rows}
    assert len(rows) == 2 * len(estimators) and all(r["status"] == "ok" for r in rows)
    (runinfo,) = (tmp_path / "mpt_lml" / "convergence" / "smoke" / "runs").glob("*/runinfo.json")
    assert json.loads(runinfo.read_text())["slurm"]["SLURM_JOB_ID"] == job


def test_submitit_multirun_sweep_runs_as_an_array(tmp_path):
    cmd = [
        PY,
        "-m",
        MODULE,
        "-m",
        "hydra/launcher=slurm_cpu",
        "seed=0,1",
        f"hydra.launcher.submitit_folder={tmp_path}/submitit/%j",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.cpus_per_task=1",
        *_tiny(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _store(tmp_path).rows()
    estimators = {r["cell"]["estimator"] for r in rows}
    assert sorted({r["cell"]["seed"] for r in rows}) == [0, 1] and len(rows) == 4 * len(estimators)
    array_ids = {p.name for p in (tmp_path / "submitit").iterdir()}
    assert any("_" in name for name in array_ids), array_ids  # <array job>_<task> folders


def test_killed_and_requeued_job_resumes_without_recomputing(tmp_path):
    masks = [40, 60, 80, 100, 120, 140]
    overrides = _tiny(tmp_path, dims="[50]", masks_per_size=str(masks).replace(" ", ""), replicates="20")
    rendered = render_experiment("mpt_lml", "convergence", ["scale=smoke", *overrides], tmp_path)
    job = _sbatch(rendered.path)
    store = _store(tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and len(store.rows()) < 2:
        time.sleep(0.5)
    done_before = len(store.rows())
    assert 0 < done_before < len(masks), "the sweep was not caught mid-way"  # of >= len(masks) cells
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    assert jobs_submit.wait([job], timeout_min=8, poll_s=1) == 0
    rows = store.rows()
    keys = [r["key"] for r in rows]
    estimators = {r["cell"]["estimator"] for r in rows}
    assert len(keys) == len(set(keys)) == len(masks) * len(estimators)  # each cell computed once
    runs = list((tmp_path / "mpt_lml" / "convergence" / "smoke" / "runs").iterdir())
    assert len(runs) == 2  # the first start and the requeued one


def test_crashing_job_fails_the_launchers_within_a_minute(tmp_path):
    # torch refuses 0 threads: the job crashes before its first cell; both waiters must say so
    start = time.time()
    cmd = [
        PY,
        "-m",
        MODULE,
        "-m",
        "hydra/launcher=slurm_cpu",
        "torch_threads=0",
        f"hydra.launcher.submitit_folder={tmp_path}/submitit/%j",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.cpus_per_task=1",
        *_tiny(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert time.time() - start < 60
    rendered = render_experiment(
        "mpt_lml", "convergence", ["scale=smoke", *_tiny(tmp_path), "torch_threads=0"], tmp_path
    )
    job = _sbatch(rendered.path)
    start = time.time()
    wait = f"import sys; from jobs.submit import wait; sys.exit(wait([{job!r}], timeout_min=2))"
    waiter = subprocess.run([PY, "-c", wait], cwd=REPO_ROOT, capture_output=True, text=True, timeout=150)
    assert waiter.returncode == 1 and time.time() - start < 60
    assert f"job {job}" in waiter.stderr and f"_{job}.out" in waiter.stderr
