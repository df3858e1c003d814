"""make gpu-check's path, run for real on the CPU (plan=small) with hydra and omegaconf made unimportable,
as on the GPU nodes; its configs read alike by hydra and by the hydra-free reader (an oracle); the full
run is a gpu test."""

import json
import os
import subprocess

import pytest
import torch
from omegaconf import OmegaConf

from common.config import compose, register_schema
from common.plain_config import load
from common.repo import CONF_DIR, REPO_ROOT
from common.serving.bench import gpu_check
from papers.slm_energy import gpu_bench

FILES = {"env.json", "sweep.jsonl", "breakdown.json", "roofline.json", "bench.json", "summary.json"}
COMMANDS = {
    "common/serving/bench/gpu_check": gpu_check.GpuCheckConfig,
    "slm_energy/gpu_bench": gpu_bench.GpuBenchConfig,
}


def _run(tmp_path, *args, timeout=600):
    blocker = tmp_path / "site"
    blocker.mkdir()
    # the GPU nodes' python has neither hydra nor omegaconf: make importing them fail here too
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['hydra'] = None\nsys.modules['omegaconf'] = None\n"
    )
    env = {
        **os.environ,
        "PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python"),
        "PYTHONPATH": str(blocker),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        ["bash", "scripts/gpu_check.sh", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_small_plan_writes_every_result_without_hydra(tmp_path):
    out = tmp_path / "gpu"
    proc = _run(tmp_path, "plan=small", f"out={out}", f"paths.results_dir={tmp_path / 'results'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert FILES <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plan"] == "small" and summary["failed_cells"] == 0 and summary["device"].startswith("CPU")
    assert set(summary["breakdown"]) == {"1", "2"}
    assert all(v["missing_reason"] for v in summary["energy"].values())  # no energy on this CPU, and why
    rows = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    assert [r["cell"]["batch_size"] for r in rows] == [1, 2]
    assert (out / "slm_energy" / "benchmark" / "pareto.json").is_file()  # the SLM benchmark ran too
    env = json.loads((out / "env.json").read_text())
    assert env["config"]["plan"]["name"] == "small" and env["config"]["plan"]["model"] == "opt-tiny"
    runs = tmp_path / "results" / "serving" / "gpu_check" / "smoke" / "runs"  # the run's own artefacts
    assert any((run / "config_resolved.yaml").is_file() for run in runs.iterdir())


def test_a_bad_override_exits_2_before_anything_runs_without_hydra(tmp_path):
    proc = _run(
        tmp_path,
        "plan=small",
        "plan.batch_sizes=[0]",
        f"out={tmp_path / 'gpu'}",
        f"paths.results_dir={tmp_path / 'results'}",
        timeout=120,
    )
    assert proc.returncode == 2 and "plan.batch_sizes" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "gpu").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("config", sorted(COMMANDS))
@pytest.mark.parametrize(
    "overrides",
    [
        ["plan=small"],
        ["plan=full"],
        [],
        ["plan=small", "out=/tmp/x", "paths.results_dir=/tmp/r"],
        ["plan=full", "plan.batch_sizes=[1,8]", "scale=paper"],
    ],
)
def test_hydra_and_the_plain_reader_compose_the_same_config(config, overrides):
    """The oracle: on the GPU nodes the same files give the same config as hydra gives here."""
    register_schema(config, COMMANDS[config])
    composed = compose(config, overrides)
    plain = load(config, CONF_DIR, overrides, COMMANDS[config])
    assert plain == OmegaConf.to_container(composed, resolve=True)
    assert plain["plan"]["name"] == ("small" if "plan=small" in overrides else "full")


@pytest.mark.parametrize("config", sorted(COMMANDS))
def test_the_plans_differ_where_they_should(config):
    register_schema(config, COMMANDS[config])
    small, full = (
        OmegaConf.to_container(compose(config, [f"plan={p}"]), resolve=True)["plan"]
        for p in ("small", "full")
    )
    assert (small["device"], full["device"]) == ("cpu", "cuda")
    assert full["workload"]["prompt_len"] == 161 and full["workload"]["output_len"] == 338  # the paper's


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_full_gpu_check(tmp_path):
    out = tmp_path / "gpu"
    proc = _run(tmp_path, f"out={out}", f"paths.results_dir={tmp_path / 'results'}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed_cells"] == 0 and summary["scaling"][0]["sublinear"]
    assert all(v["energy_per_output_token_j"] for v in summary["energy"].values())
