"""One `summary.json` per experiment and scale: the rows of the cells the last run asked for.

The result store keeps every cell ever run (so changed knobs never recompute old cells, and a sweep
resumes); the summary picks out the current configuration's cells, with the hardware and the run's
wall time, so figures.py and the README table read exactly what the last run produced.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from common.atomic import write_atomic
from common.results import _clean, cell_key

SUMMARY = "summary.json"


def write_summary(run, cells: list[dict], started: float, **extra) -> dict:
    latest = run.results.latest()
    rows = [latest[cell_key(c)] for c in cells if cell_key(c) in latest]
    payload = {
        "paper": run.cfg.paper,
        "experiment": run.cfg.experiment,
        "scale": run.cfg.scale.name,
        "device": run.info["hardware"]["device"],
        "torch_threads": run.info["hardware"]["torch_threads"],
        "run_dir": str(run.dir),
        "wall_s": time.perf_counter() - started,
        "rows": [{k: r.get(k) for k in ("cell", "status", "metrics", "error", "duration_s")} for r in rows],
        **extra,
    }
    write_atomic(run.result_dir / SUMMARY, json.dumps(_clean(payload), indent=1) + "\n")
    failed = [r["cell"] for r in rows if r["status"] != "ok"]
    if failed:
        run.logger.log({"failed_cells": len(failed)})
    return payload


def load_summary(results_dir: str | Path, experiment: str, scale: str) -> dict | None:
    path = Path(results_dir) / "mpt_lml" / experiment / scale / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def ok_rows(summary: dict) -> list[dict]:
    """Cell parameters and metrics merged, for the finished cells only."""
    return [{**r["cell"], **r["metrics"]} for r in summary["rows"] if r["status"] == "ok"]
