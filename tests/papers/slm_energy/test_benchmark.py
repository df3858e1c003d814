"""The benchmark entry point composed from its real config with tiny overrides, run in-process."""

import json
import os
import subprocess
import sys

import pytest

from common.config import compose, run_task
from common.gpu_metrics import Monitor
from common.repo import REPO_ROOT
from common.results import ResultStore
from common.serving import harness
from papers.slm_energy import benchmark, figures

TINY = [
    "logger=none",
    "models=[opt-tiny]",
    "batch_sizes=[1,2]",
    "workloads=[{kind: fixed, prompt_len: 8, output_len: 4}]",
    "repeats=1",
    "warmup=1",
    "progress=false",
    "roofline.models=[opt-125m]",
    "roofline.max_batch=1024",
]


def run(tmp_path, extra=(), name="run"):
    cfg = compose("slm_energy/benchmark", [*TINY, f"paths.results_dir={tmp_path}", *extra])
    out = run_task(benchmark.main.task, cfg, tmp_path / name)
    return out, tmp_path / "slm_energy" / "benchmark" / "smoke"


def test_benchmark_writes_cells_and_pareto_resumes_and_draws(tmp_path):
    summary, result_dir = run(tmp_path)
    store = ResultStore(result_dir / "results.jsonl")
    frame = store.load()
    assert sorted(frame["batch_size"]) == [1, 2] and (frame["output_throughput_tok_s"] > 0).all()
    pareto = json.loads((result_dir / "pareto.json").read_text())
    assert pareto == json.loads(json.dumps(summary, default=str))
    (g,) = pareto["models"]
    assert g["pareto"]["batch"] in (1, 2) and g["device"] == "cpu"
    energy = [q["energy_per_output_token_j"] for q in g["points"]]
    if g["energy"]["available"]:  # a machine with readable RAPL
        assert all(e > 0 for e in energy)
    else:  # this one: empty, with the reason
        assert energy == [None, None] and g["energy"]["missing_reason"]
    assert [p["model"] for p in pareto["predicted"]] == ["opt-125m"]
    assert set(g["roofline"]) == {"a100-40gb", "a100-80gb", "h100-sxm-80gb"}

    lines = (result_dir / "results.jsonl").read_text().count("\n")
    run(tmp_path, name="rerun")
    assert (result_dir / "results.jsonl").read_text().count("\n") == lines  # nothing measured again

    readme = (REPO_ROOT / "papers" / "slm_energy" / "README.md").read_text()
    cfg = compose(
        "slm_energy/figures",
        ["logger=none", f"paths.results_dir={tmp_path}", f"paths.figures_dir={tmp_path / 'fig'}"],
    )
    run_task(figures.main.task, cfg, tmp_path / "figures_run")
    fig = tmp_path / "fig" / "slm_energy"
    for name in ("frontier_latency", "pareto_memory", "roofline_pareto"):
        assert (fig / f"{name}_smoke.png").stat().st_size > 0
    table = (fig / "results_smoke.md").read_text()
    assert "opt-tiny" in table and "opt-125m" in table
    assert "![frontier_latency](frontier_latency_smoke.png)" in table  # linked from where the table is
    if g["energy"]["available"]:
        assert (fig / "frontier_energy_smoke.png").stat().st_size > 0
    else:  # no empty panels: no energy figure, one line saying why
        assert not (fig / "frontier_energy_smoke.png").exists()
        assert "energy per token: not measured for opt-tiny" in table
    assert (REPO_ROOT / "papers" / "slm_energy" / "README.md").read_text() == readme  # README untouched


def test_energy_per_token_from_a_replayed_power_trace(tmp_path, monkeypatch):
    """A trace at P(t) = 100 + 10 t W read on a clock that ticks 1 s per read: each repeat opens its
    window (t0), the steady window when decoding starts (t0+1), closes it at the last token (t0+2) and
    closes the run (t0+3). By hand, E[a, b] = 100 (b - a) + 5 (b^2 - a^2):
    B=1 (cells run in batch order): run [0, 3] = 345 J, steady [1, 2] = 115 J;
    B=2: run [4, 7] = 465 J, steady [5, 6] = 155 J. Output 4 tokens per request, 3 decode steps."""
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,device,power_w\n" + "".join(f"{t},gpu0,{100 + 10 * t}\n" for t in range(50)))
    ticks = iter(range(50))
    monkeypatch.setattr(
        harness,
        "_make_monitor",
        lambda spec: Monitor(backend="replay", replay_csv=trace, clock=lambda: float(next(ticks))),
    )
    _, result_dir = run(tmp_path)
    records = ResultStore(result_dir / "results.jsonl").load().to_dict("records")
    by_batch = {int(r["batch_size"]): r for r in records}
    for batch, run_j, steady_j in ((1, 345.0, 115.0), (2, 465.0, 155.0)):
        r = by_batch[batch]
        assert r["energy_j"] == pytest.approx(run_j)
        assert r["energy_per_output_token_j"] == pytest.approx(run_j / (4 * batch))
        assert r["mean_power_w"] == pytest.approx(run_j / 3)
        assert r["steady_energy_j"] == pytest.approx(steady_j)
        assert r["steady_energy_per_token_j"] == pytest.approx(steady_j / (3 * batch))
        assert r["steady_mean_power_w"] == pytest.approx(steady_j)
        assert r["energy_source"] == "replay_power_integration"
    g = json.loads((result_dir / "pareto.json").read_text())["models"][0]
    assert g["energy"]["available"] and g["energy"]["min_energy_batch"] == 2
    assert g["energy"]["min_energy_per_token_j"] == pytest.approx(465.0 / 8)


@pytest.mark.parametrize("config", ["slm_energy/benchmark", "slm_energy/replication"])
def test_unknown_key_fails_naming_the_key(config):
    with pytest.raises(Exception, match="no_such_knob"):
        compose(config, ["no_such_knob=1"])


def test_paper_scale_workloads_are_the_fixed_and_the_sharegpt_like_lengths():
    from common.serving.config import workload_spec

    cfg = compose("slm_energy/benchmark", ["scale=paper"])
    fixed, sampled = (workload_spec(w, f"workloads[{i}]") for i, w in enumerate(cfg.workloads))
    assert (fixed.kind, fixed.prompt_len, fixed.output_len) == ("fixed", 161, 338)
    assert sampled.kind == "sharegpt_sampled" and sampled.sampled.mean_prompt == 110.6


def test_typo_in_nested_key_is_named():
    with pytest.raises(Exception, match="devicez"):
        compose("slm_energy/benchmark", ["roofline.devicez=[a100-40gb]"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("models=[opt-nope]", "models"),
        ("roofline.devices=[tpu-v9]", "roofline.devices"),
        ("latency_metric=vibes", "latency_metric"),
    ],
)
def test_bad_input_exits_2_naming_the_key_and_leaves_no_run_dir(tmp_path, capsys, override, key):
    cfg = compose("slm_energy/benchmark", [*TINY, f"paths.results_dir={tmp_path}", override])
    with pytest.raises(SystemExit) as exc:
        run_task(benchmark.main.task, cfg, tmp_path / "run")
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {key}")
    assert not (tmp_path / "run").exists()


def test_gpu_check_hook_runs_without_hydra(tmp_path):
    """`make gpu-check` calls gpu_bench on GPU nodes that have neither hydra nor omegaconf: its small plan
    (tiny models, CPU) must work with both unimportable and leave the same pareto.json the figures read."""
    code = (
        "import sys; sys.modules['hydra'] = None; sys.modules['omegaconf'] = None\n"
        "from papers.slm_energy import gpu_bench\n"
        f"sys.argv = ['gpu_bench', 'plan=small', 'out={tmp_path}',\n"
        f"            'paths.results_dir={tmp_path / 'r'}']\n"
        "gpu_bench.main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pareto = json.loads((tmp_path / "slm_energy" / "benchmark" / "pareto.json").read_text())
    assert [g["model"] for g in pareto["models"]] == ["opt-tiny", "llama-tiny"]
    assert pareto["scale"] == "gpu_check_small"
