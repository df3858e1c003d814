"""The sweep harness: columns, resume without recomputing, failed and crashed cells, energy on a CPU."""

import pytest

from common.results import ResultStore
from common.serving.engine import DECODE_START
from common.serving.harness import SweepSpec, run_sweep, scaling_summary
from common.serving.hf_engine import HFEngine
from common.serving.workloads import WorkloadSpec

COLUMNS = {
    "output_throughput_tok_s",
    "total_throughput_tok_s",
    "request_throughput_rps",
    "ttft_ms_mean",
    "ttft_ms_median",
    "ttft_ms_p99",
    "tpot_ms_mean",
    "itl_ms_mean",
    "itl_ms_median",
    "itl_ms_p99",
    "e2e_ms_mean",
    "e2e_ms_p99",
    "prefill_time_s",
    "decode_time_s",
    "prefill_fraction",
    "peak_memory_bytes",
    "kv_cache_bytes",
    "energy_j",
    "mean_power_w",
    "steady_energy_j",
    "steady_mean_power_w",
    "steady_time_s",
    "energy_per_output_token_j",
    "energy_missing_reason",
    "device_name",
    "precision",
    "repeats",
    "n_params",
}


class CountingEngine:
    """The tiny engine, counting runs per batch size; `fail_at` batch sizes raise like a crash or OOM."""

    def __init__(self, engine: HFEngine, fail_at=(), interrupt_at=(), fail_on_run=1):
        self.engine, self.fail_at, self.interrupt_at = engine, set(fail_at), set(interrupt_at)
        self.fail_on_run = fail_on_run  # 1: the warm-up; 2: the first measured run, inside energy windows
        self.runs: dict[int, int] = {}

    def run(self, prompts, max_new_tokens, hook=None):
        b = len(prompts)
        self.runs[b] = self.runs.get(b, 0) + 1
        if b in self.fail_at and self.runs[b] == self.fail_on_run:
            if hook is not None:
                hook(DECODE_START)  # fail half-way through a measured run, with its windows open
            raise RuntimeError(f"CUDA out of memory (simulated) at B={b}")
        if b in self.interrupt_at:
            raise KeyboardInterrupt  # what a kill looks like from inside: nothing recorded
        return self.engine.run(prompts, max_new_tokens, hook=hook)

    def describe(self):
        return self.engine.describe()

    def close(self):
        pass


def spec(**kw):
    base = dict(
        models=["opt-tiny"],
        batch_sizes=[1, 2, 4],
        workloads=[WorkloadSpec(prompt_len=6, output_len=4)],
        device="cpu",
        repeats=2,
        warmup=1,
        warmup_tokens=2,
        monitor="cpu",
    )
    return SweepSpec(**{**base, **kw})


def test_sweep_rows_columns_and_cpu_energy(tmp_path, tiny_engine):
    frame = run_sweep(
        spec(),
        ResultStore(tmp_path / "r.jsonl"),
        tmp_path,
        progress=False,
        engine_factory=lambda _: tiny_engine,
    )
    assert sorted(frame["batch_size"]) == [1, 2, 4] and (frame["status"] == "ok").all()
    assert COLUMNS <= set(frame.columns)
    row = frame.set_index("batch_size").loc[4]
    assert row["device"] == "cpu" and row["device_name"].startswith("CPU")  # it says it ran on a CPU
    assert row["output_tokens"] == 16 and row["repeats"] == 2
    assert row["energy_j"] is None and "RAPL" in row["energy_missing_reason"]
    assert row["steady_time_s"] > 0 and row["steady_tokens"] == 12  # three full decode steps of 4
    assert (tmp_path / "requests_fixed-6-4_v8192.json").exists()


@pytest.mark.parametrize("fail_on_run", [1, 2])
def test_rerun_skips_finished_cells_and_retries_failed_ones(tmp_path, tiny_engine, fail_on_run):
    store = ResultStore(tmp_path / "r.jsonl")
    flaky = CountingEngine(tiny_engine, fail_at={2}, fail_on_run=fail_on_run)
    frame = run_sweep(spec(), store, tmp_path, progress=False, engine_factory=lambda _: flaky)
    status = frame.set_index("batch_size")["status"]
    assert status.to_dict() == {1: "ok", 2: "failed", 4: "ok"}  # the sweep went on past the failure
    assert "out of memory" in frame.set_index("batch_size").loc[2, "error"]
    fixed = CountingEngine(tiny_engine)
    frame = run_sweep(spec(), store, tmp_path, progress=False, engine_factory=lambda _: fixed)
    assert set(fixed.runs) == {2}  # only the failed cell ran again
    assert (frame["status"] == "ok").all()


def test_killed_sweep_resumes_without_recomputing(tmp_path, tiny_engine):
    store = ResultStore(tmp_path / "r.jsonl")
    killed = CountingEngine(tiny_engine, interrupt_at={2})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec(), store, tmp_path, progress=False, engine_factory=lambda _: killed)
    assert [r["cell"]["batch_size"] for r in store.rows()] == [1]
    resumed = CountingEngine(tiny_engine)
    run_sweep(spec(), store, tmp_path, progress=False, engine_factory=lambda _: resumed)
    assert set(resumed.runs) == {2, 4}
    assert sorted(r["cell"]["batch_size"] for r in store.rows()) == [1, 2, 4]  # one row per cell


def test_a_model_that_cannot_load_fails_its_cells_only(tmp_path):
    frame = run_sweep(
        spec(models=["no-such/model-offline", "opt-tiny"], batch_sizes=[1]),
        ResultStore(tmp_path / "r.jsonl"),
        tmp_path,
        progress=False,
    )
    status = frame.set_index("model")["status"].to_dict()
    assert status == {"no-such/model-offline": "failed", "opt-tiny": "ok"}


def test_scaling_summary_flags_sublinear_growth():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "model": "m",
            "workload": "w",
            "engine": "hf",
            "dtype": "fp32",
            "device": "cpu",
            "device_name": "CPU",
            "status": "ok",
            "batch_size": [1, 8, 64],
            "output_throughput_tok_s": [10.0, 60.0, 200.0],
        }
    )
    [s] = scaling_summary(frame)
    assert s["throughput_gain"] == 20.0 and s["batch_ratio"] == 64
    assert s["sublinear"] and s["sublinear_every_step"] and s["increasing"]
    frame.loc[2, "output_throughput_tok_s"] = 50.0
    assert not scaling_summary(frame)[0]["increasing"]
