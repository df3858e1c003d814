"""make gpu-check's path, run for real on the CPU (--dry-run) with hydra made unimportable, as on the
GPU nodes; the full run is a gpu test."""

import json
import os
import subprocess

import pytest
import torch

from common.repo import REPO_ROOT
from common.serving.bench import gpu_check

FILES = {"env.json", "sweep.jsonl", "breakdown.json", "roofline.json", "bench.json", "summary.json"}


def _run(tmp_path, *args, timeout=600):
    blocker = tmp_path / "site"
    blocker.mkdir()
    # the GPU nodes' python has no hydra: make importing it fail here too
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['hydra'] = None\n")
    env = {**os.environ, "PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python"), "PYTHONPATH": str(blocker)}
    return subprocess.run(["bash", "scripts/gpu_check.sh", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_dry_run_writes_every_result_without_hydra(tmp_path):
    out = tmp_path / "gpu"
    proc = _run(tmp_path, "--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert FILES <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and summary["failed_cells"] == 0 and summary["device"].startswith("CPU")
    assert set(summary["breakdown"]) == {"1", "2"}
    assert all(v["missing_reason"] for v in summary["energy"].values())  # no energy on this CPU, and why
    rows = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    assert [r["cell"]["batch_size"] for r in rows] == [1, 2]
    assert (out / "slm_energy" / "benchmark" / "pareto.json").is_file()  # the SLM benchmark ran too


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_full_gpu_check(tmp_path):
    out = tmp_path / "gpu"
    proc = _run(tmp_path, "--out", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed_cells"] == 0 and summary["scaling"][0]["sublinear"]
    assert all(v["energy_per_output_token_j"] for v in summary["energy"].values())


@pytest.mark.parametrize("name,key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm-80gb"), ("NVIDIA H100", "h100-64gb"), ("NVIDIA H200", "h200"),
    ("NVIDIA H100 PCIe", None), ("NVIDIA H100 NVL", None), ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA L4", "l4"), ("Tesla T4", None),
])
def test_spec_sheet_by_device_name(name, key):
    found, spec = gpu_check.spec_for(name)
    assert found == key and (spec is None) == (key is None)
