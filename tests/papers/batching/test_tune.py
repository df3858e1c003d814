"""The online B_opt search on a live engine (a tiny model on this CPU): what it probes, what it chooses,
the engine settings it writes, and its comparison with the full sweep. Properties only, never times."""

import json

import pytest
import yaml

from papers.batching import tune
from tests.papers.batching.helpers import run_entry

TINY = [
    "model=opt-tiny",
    "batch_sizes=[1,2,4,8,16]",
    "workload.prompt_len=4",
    "workload.output_len=8",
    "probe_tokens=3",
    "probe_repeats=1",
    "warmup=1",
    "warmup_tokens=2",
    "repeats=1",
    "ref_batch=4",
    "torch_threads=1",
]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    results = tmp_path_factory.mktemp("tune")
    summary = run_entry(tune, "batching/tune", results, *TINY, "compare_sweep=true")
    return results / "batching" / "tune" / "smoke", summary


def test_the_tuner_probes_part_of_the_grid_and_chooses_by_the_bca_rule(tuned):
    out, s = tuned
    grid = [1, 2, 4, 8, 16]
    assert s["grid"] == grid and set(s["probed_batches"]) <= set(grid) and s["b_opt"] in s["probed_batches"]
    assert 1 in s["probed_batches"] and 4 in s["probed_batches"]  # T(1) and the SLO's anchor
    assert s["probed_batches"] == sorted({p["batch"] for p in s["probes"]})
    assert by_batch_runs(s)[1] >= 3 and by_batch_runs(s)[4] >= 2  # T(1) and the SLO's anchor, repeated
    assert s["probe_runs"] == sum(by_batch_runs(s).values())
    assert any(word in s["stop"] for word in ("SLO", "epsilon", "plateau", "top of the grid", "walked down"))
    by_batch = {p["batch"]: p for p in s["probes"]}
    assert s["slo_ms"] == pytest.approx(3 * by_batch[4]["latency_ms"])
    chosen = by_batch[s["b_opt"]]
    assert chosen["latency_ms"] <= s["slo_ms"]
    assert chosen["throughput"] / (s["b_opt"] * by_batch[1]["throughput"]) > 0.1 or s["b_opt"] == 1
    # best-throughput among the probed batches that meet the SLO and epsilon
    feasible = [
        p
        for p in s["probes"]
        if p["latency_ms"] <= s["slo_ms"]
        and (p["batch"] == 1 or p["throughput"] / (p["batch"] * by_batch[1]["throughput"]) > 0.1)
    ]
    assert chosen["throughput"] == max(p["throughput"] for p in feasible)
    assert all(p["probe_time_s"] > 0 and p["throughput"] > 0 for p in s["probes"])


def by_batch_runs(s) -> dict:
    return {p["batch"]: p["probes"] for p in s["probes"]}


def test_the_tuner_writes_the_engine_settings_as_flags_and_a_vllm_config(tuned):
    out, s = tuned
    config = yaml.safe_load((out / "vllm_serve.yaml").read_text())
    assert config["max-num-seqs"] == s["b_opt"] and config["model"] == "opt-tiny"
    assert 0 < config["gpu-memory-utilization"] <= 0.9
    flags = (out / "vllm_flags.txt").read_text()
    assert flags.startswith("vllm serve opt-tiny") and f"--max-num-seqs {s['b_opt']}" in flags
    assert f"--gpu-memory-utilization {config['gpu-memory-utilization']}" in flags
    assert json.loads((out / "tune.json").read_text())["b_opt"] == s["b_opt"]
    memory = s["settings"]["memory"]
    assert memory["kv_gib"] > 0 and memory["gpu_memory_utilization"] == config["gpu-memory-utilization"]


def test_against_the_full_sweep_the_tuner_spends_less_probe_time(tuned):
    out, s = tuned
    c = s["compare"]
    assert [p["batch"] for p in c["sweep_points"]] == s["grid"]  # the sweep measured every batch
    assert c["sweep_b_opt"] in s["grid"]
    assert c["probe_time_ratio"] == pytest.approx(c["tuner_time_s"] / c["sweep_time_s"])
    # the work behind the times: the short probes generate fewer tokens than the sweep's cells (full
    # lengths, a warm-up, repeats), at every batch probed and in all
    probe_tokens, warmup_tokens, output, repeats = 3, 2, 8, 1
    assert all(p["probes"] * probe_tokens < warmup_tokens + output * repeats for p in s["probes"])
    tuner_work = sum(p["batch"] * probe_tokens * p["probes"] for p in s["probes"])
    assert tuner_work < sum(b * (warmup_tokens + output * repeats) for b in s["grid"])
    at = {p["batch"]: p["throughput"] for p in c["sweep_points"]}
    assert c["throughput_gap"] == pytest.approx(1 - at[s["b_opt"]] / at[c["sweep_b_opt"]])


def test_an_slo_no_batch_meets_exits_2(tmp_path, caplog):
    with pytest.raises(SystemExit) as exc:
        run_entry(tune, "batching/tune", tmp_path, *TINY, "slo_ms=0.00001")
    assert exc.value.code == 2 and "no batch meets the latency SLO" in caplog.text


@pytest.mark.parametrize(
    "override, key", [("batch_sizes=[2,4]", "batch_sizes"), ("probe_tokens=8", "probe_tokens")]
)
def test_bad_settings_exit_2_naming_the_key(override, key, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run_entry(tune, "batching/tune", tmp_path, *TINY, override)
    assert exc.value.code == 2 and capsys.readouterr().err.startswith(f"error: {key}:")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
