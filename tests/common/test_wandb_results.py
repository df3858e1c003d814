"""What a sweep's wandb run holds, read back offline: its cells as a table, the sweep axis as the step
metric of every metric, summary metrics keyed by the axes, and the result files as an artifact."""

import json
import os
import subprocess
import sys

from tests.wandb_records import read_offline_run, records


def test_a_sweep_run_charts_itself(demo_app, tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(demo_app / "app.py"), f"paths.results_dir={results}", "logger=wandb", "n=4"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=demo_app,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (results / "demo/exp/smoke/runs").iterdir()
    run = read_offline_run(run_dir)
    recs = records(next(run.dir.glob("run-*.wandb")))
    metrics = {
        r.metric.name or r.metric.glob_name: r.metric.step_metric
        for r in recs
        if r.WhichOneof("record_type") == "metric"
    }
    assert metrics.get("metrics/*") == "cell/i"  # every metric is plotted against the sweep axis
    assert run.history["cells"]["_type"] == "table-file" and run.history["cells"]["nrows"] == 4
    summary = {
        i.key or "/".join(i.nested_key): json.loads(i.value_json)
        for r in recs
        if r.WhichOneof("record_type") == "summary"
        for i in r.summary.update
    }
    assert summary["cells/i=3/square"] == 9 and summary["cells/total"] == 4
    artifacts = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact"]
    (art,) = [a for a in artifacts if a.type == "results"]
    assert art.name == "demo-exp-smoke"
    assert "results.jsonl" in {e.path for e in art.manifest.contents}
    assert json.loads(art.metadata)["n"] == 4  # the config rides with the files
