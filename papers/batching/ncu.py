"""DRAM throughput and achieved occupancy of decode attention and matmul kernels (paper Table I, Fig. 6).

    python -m papers.batching.ncu                  # on a GPU node with Nsight Compute
    python -m papers.batching.ncu scale=paper      # batch 1 and 512, as the paper's OPT-1.3B row

Runs the serving core's job script (scripts/ncu_decode.sh: one decode step of OPT-1.3B in fp16 on the hf
engine under `ncu`) once per batch size, with its CSV and JSON written to the result dir
(<paths.results_dir>/batching/ncu/<scale>/), and stores its per-class summary as one result row per batch.
Nsight Compute reads NVIDIA GPU hardware counters, so on a machine without a CUDA device or without
`ncu` nothing is measured: <result_dir>/summary.json then says "missing" and why, and the run succeeds
(the rest of the study does not depend on it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.results import cell_key

log = logging.getLogger(__name__)
MODEL = "opt-1.3b"  # what scripts/ncu_decode.sh profiles (fp16, random weights)


def missing_reason() -> str | None:
    """Why Nsight Compute cannot run here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        from common.runinfo import cpu_model

        return (
            f"no CUDA device on this host (CPU: {cpu_model()}, torch {torch.__version__}); Nsight "
            "Compute reads NVIDIA GPU hardware counters, so Table I / Fig. 6 need a GPU node"
        )
    ncu = os.environ.get("NCU", "ncu")
    if shutil.which(ncu) is None:
        return f"Nsight Compute ({ncu}) is not on PATH on this GPU node; set NCU=/path/to/ncu"
    return None


def profile_batch(script: Path, batch: int, timeout_s: float, out: Path) -> dict:
    """Run the job script for one batch size, its Nsight Compute CSV and summary written to `out` (the
    run's result dir); returns the per-class summary."""
    out = out.resolve()
    subprocess.run(
        ["bash", str(script), str(batch)],
        check=True,
        timeout=timeout_s,
        cwd=script.parent,
        env={**os.environ, "PYTHON": sys.executable, "NCU_OUT_DIR": str(out)},
    )
    return json.loads((out / f"ncu_decode_B{batch}.json").read_text())


@entrypoint("batching/ncu")
def main(cfg, run):
    script = Path(cfg.script)
    if not script.is_file():
        raise BadInput(f"script: {script} is not a file (scripts/ncu_decode.sh)")
    if not cfg.batch_sizes or min(cfg.batch_sizes) < 1:
        raise BadInput(f"batch_sizes: {list(cfg.batch_sizes)} must be a non-empty list of sizes >= 1")
    summary = {
        "hardware": run.info["hardware"]["device"],
        "model": MODEL,
        "batch_sizes": list(cfg.batch_sizes),
        "script": str(script),
    }
    reason = missing_reason()
    if reason is not None:
        log.warning("Table I / Fig. 6 not measured: %s", reason)
        summary.update(status="missing", reason=reason)
    else:
        import torch

        summary["hardware"] = torch.cuda.get_device_name(0)  # runinfo names a GPU only if torch was loaded
        rows = {}
        for batch in cfg.batch_sizes:
            cell = {
                "model": MODEL,
                "dtype": "fp16",
                "device_name": summary["hardware"],
                "batch_size": int(batch),
            }
            row = run.results.run_cell(
                cell, lambda b=batch: profile_batch(script, int(b), cfg.timeout_s, run.result_dir)
            )
            row = row or run.results.latest()[cell_key(cell)]  # finished by an earlier run
            rows[int(batch)] = {"status": row["status"], "error": row["error"], **(row["metrics"] or {})}
        ok = all(r["status"] == "ok" for r in rows.values())
        summary.update(status="ok" if ok else "partial", batches=rows)
        for batch, r in rows.items():
            for cls, m in (r.get("classes") or {}).items():
                log.info(
                    "B=%d %s: %d kernels, DRAM throughput %.0f%% of peak, occupancy %.0f%%",
                    batch,
                    cls,
                    m["kernels"],
                    m["dram_throughput_pct"] or float("nan"),
                    m["achieved_occupancy_pct"] or float("nan"),
                )
    write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
