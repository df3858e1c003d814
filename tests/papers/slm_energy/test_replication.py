"""k instances in k processes: energy through a replayed trace, failed batches, the entry point."""

import json
import os

import pytest

from common.config import compose, run_task
from common.gpu_metrics import Monitor
from common.results import ResultStore
from common.serving.workloads import Request, WorkloadSpec, build_requests
from papers.slm_energy import replication
from papers.slm_energy.replicas import Group, replication_summary, run_group

CORE = sorted(os.sched_getaffinity(0))[:1]


def test_energy_from_a_replayed_trace_and_a_failing_batch_recorded(tmp_path):
    """One window per repeat, opened when every instance starts and closed when the last ends; on a
    clock ticking 1 s per read, batch 1's window is [0, 1]: E = 100 + 5 (1 - 0) = 105 J for
    P(t) = 100 + 10 t, over 1 request x 4 tokens. Request 1's prompt is longer than opt-tiny's 512
    positions, so batch 2 fails inside its instance and is stored as failed with that instance's error
    (one process start for both checks: starting one is the slow part)."""
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,device,power_w\n" + "".join(f"{t},gpu0,{100 + 10 * t}\n" for t in range(20)))
    ticks = iter(range(20))
    monitor = Monitor(backend="replay", replay_csv=trace, clock=lambda: float(next(ticks)))
    good = build_requests(WorkloadSpec("fixed", 8, 4), 1, 8192)[0]
    requests = [good, Request(tuple([5] * 600), 4)]
    store = ResultStore(tmp_path / "results.jsonl")
    group = Group("opt-tiny", 1, device="cpu", cores=CORE, warmup=0, repeats=1, timeout_s=120)
    served = run_group(group, [1, 2], "w", "cpu", requests, store, monitor)
    rows = {r["batch_per_instance"]: r for r in served}
    row = rows[1]
    assert row["status"] == "ok" and row["output_tokens"] == 4 and row["n_requests"] == 1
    assert row["energy_j"] == pytest.approx(105.0)
    assert row["energy_per_output_token_j"] == pytest.approx(105.0 / 4)
    assert row["mean_power_w"] == pytest.approx(105.0)
    assert row["energy_source"] == "replay_power_integration"
    # CPU time counts every thread of the instance (torch's helpers too), so a run of a few ms on one
    # core can read a little above 100%; a wrong core count or wall time would be off by far more
    assert 0 < row["utilization_pct"] <= 110
    assert row["cores_per_instance"] == 1 and row["instance"]["model"] == "opt-tiny"
    assert rows[2]["status"] == "failed" and "replica 0" in rows[2]["error"]
    stored = len(store.rows())
    assert run_group(group, [1], "w", "cpu", requests, store, monitor)[0]["status"] == "ok"
    assert len(store.rows()) == stored  # a finished batch is not served again


def test_summary_gains_by_hand():
    rows = [
        {
            "replicas": 1,
            "batch_per_instance": 1,
            "total_batch": 1,
            "output_throughput_tok_s": 10.0,
            "e2e_ms_mean": 1.0,
            "utilization_pct": 40.0,
            "energy_per_output_token_j": None,
        },
        {
            "replicas": 1,
            "batch_per_instance": 2,
            "total_batch": 2,
            "output_throughput_tok_s": 20.0,
            "e2e_ms_mean": 2.0,
            "utilization_pct": 50.0,
            "energy_per_output_token_j": None,
        },
        {
            "replicas": 2,
            "batch_per_instance": 1,
            "total_batch": 2,
            "output_throughput_tok_s": 30.0,
            "e2e_ms_mean": 1.5,
            "utilization_pct": 90.0,
            "energy_per_output_token_j": None,
        },
    ]
    s = replication_summary(rows, 0.05)
    assert s["per_k"][1]["best_batch_per_instance"] == 2 and not s["per_k"][1]["saturated"]
    (gain,) = s["gains"]
    assert gain["throughput_gain_at_best"] == pytest.approx(1.5)
    assert gain["latency_ratio_at_best"] == pytest.approx(0.75)
    assert gain["utilization_gain_at_best"] == pytest.approx(1.8)
    assert gain["energy_per_token_ratio_at_best"] is None
    assert gain["throughput_gain_same_total_batch"] == {2: pytest.approx(1.5)}


@pytest.mark.slow  # three instance processes: ~25 s on the shared 2 cores
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two instances need two cores")
def test_replication_entry_point_k1_k2(tmp_path):
    cfg = compose(
        "slm_energy/replication",
        [
            "logger=none",
            f"paths.results_dir={tmp_path}",
            "model=opt-tiny",
            "total_batches=[2,4]",
            "repeats=1",
            "warmup=0",
            "workload={kind: fixed, prompt_len: 8, output_len: 4}",
            "progress=false",
        ],
    )
    summary = run_task(replication.main.task, cfg, tmp_path / "run")
    result_dir = tmp_path / "slm_energy" / "replication" / "smoke"
    frame = ResultStore(result_dir / "results.jsonl").load()
    assert sorted(zip(frame["replicas"], frame["total_batch"])) == [(1, 2), (1, 4), (2, 2), (2, 4)]
    assert set(frame[frame["replicas"] == 2]["cores_per_instance"]) == {1}
    saved = json.loads((result_dir / "replication.json").read_text())
    assert saved["gains"] == json.loads(json.dumps(summary["gains"]))
    (gain,) = summary["gains"]
    assert gain["replicas"] == 2 and set(gain["throughput_gain_same_total_batch"]) == {2, 4}


TOO_MANY = len(os.sched_getaffinity(0)) + 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([f"replicas=[1,{TOO_MANY}]", f"total_batches=[{2 * TOO_MANY}]"], "replicas:"),  # more than the cores
        (["replicas=[1,2]", "total_batches=[3]"], "total_batches:"),  # 3 requests do not split in 2
        (["replicas=[2]"], "replicas:"),  # no single-instance baseline
    ],
)
def test_bad_replication_settings_exit_2_naming_the_key(tmp_path, capsys, overrides, message):
    cfg = compose("slm_energy/replication", ["logger=none", f"paths.results_dir={tmp_path}", *overrides])
    with pytest.raises(SystemExit) as exc:
        run_task(replication.main.task, cfg, tmp_path / "run")
    assert exc.value.code == 2 and capsys.readouterr().err.startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()
