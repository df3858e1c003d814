"""The batch-size study's entry points (study, breakdown, Nsight Compute, the BCA step), each composed from
its real config with tiny overrides and run in-process; their numbers are checked against the stored
sweep they read, the authors' published tables and an independent re-derivation of the BCA rule."""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from common.config import compose
from common.repo import CONF_DIR, REPO_ROOT
from common.results import ResultStore
from common.schema import module_of
from papers.batching import bca, breakdown, ncu, study
from tests.papers.batching.helpers import run_entry

REF = REPO_ROOT / "papers" / "batching" / "reference"
EXPERIMENTS = {
    "study": "papers.batching.study",
    "breakdown": "papers.batching.breakdown",
    "ncu": "papers.batching.ncu",
    "bca": "papers.batching.bca",
    "replicate": "papers.batching.replicate",
}


# ---- configs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_config_header_names_its_entry_point(experiment):
    """The module is named as the config; the `# Run:` header a reader copies names that module."""
    assert module_of(f"batching/{experiment}") == EXPERIMENTS[experiment]
    header = (CONF_DIR / "batching" / f"{experiment}.yaml").read_text().splitlines()[1]
    assert header.startswith(f"# Run: python -m {EXPERIMENTS[experiment]} "), header


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_unknown_key_fails_naming_the_key(experiment):
    import papers.batching.config  # noqa: F401

    with pytest.raises(ConfigCompositionException) as err:
        compose(f"batching/{experiment}", ["batch_size_typo=3"])
    assert "batch_size_typo" in str(err.value) + str(err.value.__cause__)


def test_paper_scale_asks_for_a_gpu_where_it_measures():
    import papers.batching.config  # noqa: F401

    for experiment in ("breakdown", "ncu", "replicate", "sweep"):
        assert compose(f"batching/{experiment}", ["scale=paper"]).job.profile == "gpu1", experiment
    cfg = compose("batching/replicate", ["scale=paper"])
    assert (cfg.model, cfg.dtype, cfg.num_requests, cfg.baseline_batch) == ("opt-1.3b", "fp16", 2000, 512)
    assert compose("batching/breakdown", ["scale=paper"]).models[-1] == "llama-2-13b"
    assert compose("batching/study", ["scale=paper"]).job.profile == "cpu"  # reads tables only


# ---- study (Figs 2-4) ------------------------------------------------------------------------------
def test_study_puts_the_stored_sweep_in_the_papers_terms(tiny_results):
    run_entry(study, "batching/study", tiny_results)
    out = tiny_results / "batching" / "study" / "smoke"
    ours = pd.read_csv(out / "ours.csv").sort_values("batch_size")
    sweep = ResultStore(tiny_results / "batching" / "sweep" / "smoke" / "results.jsonl").load()
    sweep = sweep.sort_values("batch_size")
    assert ours["batch_size"].tolist() == [1, 2, 4]
    # nothing re-measured: the numbers are the stored cells'
    np.testing.assert_allclose(ours["total_throughput_tok_s"], sweep["total_throughput_tok_s"])
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    np.testing.assert_allclose(ours["kv_pct_of_device"], 100 * sweep["kv_cache_bytes"].to_numpy() / ram)
    np.testing.assert_allclose(
        ours["decode_slowdown"], sweep["decode_time_s"].to_numpy() / sweep["decode_time_s"].iloc[0]
    )
    assert ours["decode_slowdown"].iloc[0] == 1 and ours["throughput_of_best"].max() == 1
    # KV bytes grow linearly with the batch (same lengths): an oracle independent of timing
    np.testing.assert_allclose(ours["kv_cache_bytes"] / ours["batch_size"], ours["kv_cache_bytes"].iloc[0])

    summary = json.loads((out / "summary.json").read_text())
    [mine] = summary["ours"]
    assert mine["device_name"].startswith("CPU") and mine["batches"] == [1, 2, 4]
    assert mine["plateau_batch"] in (1, 2, 4)
    # the authors' Figs 2-3 curves end at the last cap without preemption (data README, quirk 4)
    ends = {s["model"]: s["largest_unpreempted_cap"] for s in summary["authors_background"]}
    assert ends == {"opt-1.3b": 768, "opt-2.7b": 384, "llama-2-7b": 192, "llama-2-13b": 80}


def test_study_kv_share_of_the_authors_gpu_from_vllms_own_pool(tiny_results):
    """At cap 1 the pool vLLM allocated is the logged kv_cache_gib, so used GiB = usage % x that pool."""
    run_entry(study, "batching/study", tiny_results)
    bg = pd.read_csv(tiny_results / "batching" / "study" / "smoke" / "authors_background.csv")
    memory = pd.read_csv(REF / "server_memory.csv").query("sweep == 'background'").set_index("model")
    raw = pd.read_csv(REF / "background_sweep.csv")
    for model in memory.index:
        row = bg[(bg["model"] == model) & (bg["max_num_seqs"] == 1)].iloc[0]
        usage = raw[(raw["model"] == model) & (raw["max_num_seqs"] == 1)]["max_kv_cache_usage_pct"].iloc[0]
        assert row["kv_pool_gib"] == pytest.approx(memory.loc[model, "kv_cache_gib"], rel=1e-6)
        assert row["kv_pct_of_device"] == pytest.approx(
            usage * memory.loc[model, "kv_cache_gib"] / memory.loc[model, "total_gpu_memory_gib"], rel=1e-6
        )
    off = pd.read_csv(tiny_results / "batching" / "study" / "smoke" / "authors_offline.csv")
    opt27 = off[off["model"] == "opt-2.7b"].sort_values("batch_size")
    assert set(opt27["experiment"]) == {"prefill_vs_decode/batch_evolution"}  # the unprofiled Fig. 4 runs
    assert opt27["decode_slowdown"].iloc[0] == 1.0 and (opt27["decode_slowdown"].diff().dropna() > 0).all()


def test_study_without_a_sweep_exits_2_naming_the_key(tmp_path):
    with pytest.raises(SystemExit) as exc:
        run_entry(study, "batching/study", tmp_path)
    assert exc.value.code == 2
    assert not any((tmp_path / "runs").iterdir())


# ---- Fig. 5 -------------------------------------------------------------------------------------------
def test_breakdown_shares_and_resume(tmp_path):
    tiny = ["models=[opt-tiny]", "batch_sizes=[1,4]", "prompt_len=4", "decode_steps=2", "progress=false"]
    run_entry(breakdown, "batching/breakdown", tmp_path, *tiny)
    store = ResultStore(tmp_path / "batching" / "breakdown" / "smoke" / "results.jsonl")
    frame = store.load()
    assert sorted(frame["batch_size"]) == [1, 4] and (frame["device"] == "cpu").all()
    shares = frame[["attention_share", "matmul_share", "other_share", "gap_share"]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (shares >= 0).all().all() and (frame["matmul_share"] > 0).all()
    seconds = frame[["attention_s", "matmul_s", "other_s", "gap_s"]].sum(axis=1)
    assert (seconds >= frame["decode_wall_s"] * 0.999).all()  # the gap is what the ops leave of the wall
    before = len(store.rows())
    run_entry(breakdown, "batching/breakdown", tmp_path, *tiny)
    assert len(store.rows()) == before  # finished cells are not profiled again


def test_breakdown_bad_model_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        run_entry(breakdown, "batching/breakdown", tmp_path, "models=[gpt-17]")
    assert exc.value.code == 2


# ---- Table I / Fig. 6 ---------------------------------------------------------------------------------
def test_ncu_is_recorded_as_missing_with_its_reason_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the real Nsight Compute path runs instead")
    summary = run_entry(ncu, "batching/ncu", tmp_path)
    saved = json.loads((tmp_path / "batching" / "ncu" / "smoke" / "summary.json").read_text())
    assert saved == summary and saved["status"] == "missing"
    assert "no CUDA device" in saved["reason"] and saved["hardware"].startswith("CPU")
    assert not (tmp_path / "batching" / "ncu" / "smoke" / "results.jsonl").exists()  # nothing pretends


def test_ncu_job_script_writes_into_the_result_dir_it_is_given(tmp_path):
    """The output dir comes from the run (paths), not from a default the script or the module spells."""
    script = tmp_path / "fake_ncu.sh"
    script.write_text(
        '#!/usr/bin/env bash\nset -eu\nmkdir -p "$NCU_OUT_DIR"\n'
        'printf \'{"batch": %s, "python": "%s"}\' "$1" "$PYTHON" \\\n'
        '  > "$NCU_OUT_DIR/ncu_decode_B$1.json"\n'
    )
    out = tmp_path / "results" / "batching" / "ncu" / "smoke"
    assert ncu.profile_batch(script, 4, 30, out) == {"batch": 4, "python": sys.executable}
    assert [p.name for p in out.iterdir()] == ["ncu_decode_B4.json"]


def test_ncu_job_script_end_to_end_with_a_stand_in_ncu(tmp_path, monkeypatch):
    """The real job script and decode_step's summary, with `ncu` replaced by a stub that writes a recorded
    CSV: the CSV, its summary and decode_step's run records all land in the dir ncu.py gives."""
    from tests.common.serving.test_kernels import NCU_CSV

    recorded = tmp_path / "recorded.csv"
    recorded.write_text(NCU_CSV)
    stub = tmp_path / "ncu"
    stub.write_text(
        "#!/usr/bin/env bash\nwhile [[ $# -gt 0 ]]; do\n"
        '  if [[ $1 == --log-file ]]; then cp "$RECORDED" "$2"; fi; shift\ndone\n'
    )
    stub.chmod(0o755)
    monkeypatch.setenv("NCU", str(stub))
    monkeypatch.setenv("RECORDED", str(recorded))
    out = tmp_path / "results" / "batching" / "ncu" / "smoke"
    summary = ncu.profile_batch(REPO_ROOT / "scripts" / "ncu_decode.sh", 4, 300, out)
    assert summary["classes"]["attention"]["kernels"] == 1 and summary["classes"]["matmul"]["kernels"] == 2
    assert {p.name for p in out.iterdir()} == {"ncu_decode_B4.csv", "ncu_decode_B4.json", "decode_step"}


# ---- the BCA step -------------------------------------------------------------------------------------
def _rule(frame: pd.DataFrame, slo_factor=3.0, ref=32.0, epsilon=0.1) -> int:
    """The BCA rule written out again, for the oracle: highest total throughput among caps within
    slo_factor x the TPOT at the cap nearest ref, with T(B)/(B T(1)) > epsilon."""
    f = frame.dropna(subset=["mean_tpot_ms"]).sort_values("max_num_seqs")
    slo = slo_factor * f.iloc[int(np.argmin(np.abs(f["max_num_seqs"] - ref)))]["mean_tpot_ms"]
    t1 = f[f["max_num_seqs"] == 1]["total_token_throughput_tok_s"].iloc[0]
    efficient = f["total_token_throughput_tok_s"] / (f["max_num_seqs"] * t1) > epsilon
    ok = f[(f["mean_tpot_ms"] <= slo) & efficient]
    return int(
        ok.sort_values(["total_token_throughput_tok_s", "max_num_seqs"], ascending=[False, True]).iloc[0][
            "max_num_seqs"
        ]
    )


def test_bca_step_on_its_own_sweep_and_the_authors(tiny_results):
    summary = run_entry(bca, "batching/bca", tiny_results)
    out = tiny_results / "batching" / "bca" / "smoke"
    assert set(summary["runs"]) == {
        "own_sweep",
        "advisor",
        "advisor_eps0",
        "advisor_no_preempted",
        "background",
        "paper_fig10",
        "paper_fig12",
    }
    fig12 = {(c["model"], c["output_len"]): c for c in summary["runs"]["paper_fig12"]["curves"]}
    assert fig12[("opt-1.3b", 390)]["freed_pct"] == pytest.approx(63.23, abs=0.01)  # the paper's Fig. 12
    [own] = summary["runs"]["own_sweep"]["curves"]
    assert own["b_opt_cap"] in (1, 2, 4)
    assert summary["runs"]["own_sweep"]["device_memory_source"].startswith("CPU")
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert own["device_gib"] == pytest.approx(ram_gib, rel=1e-3)
    authors = pd.read_csv(REF / "advisor_sweep.csv")
    curves = {c["label"]: c for c in summary["runs"]["advisor"]["curves"]}
    assert len(curves) == 16
    for label in ("opt-1.3b 260", "opt-2.7b 390", "llama-2-7b 130"):
        model, out_len = label.split()
        sel = authors[(authors["model"] == model) & (authors["output_len"] == int(out_len))]
        assert curves[label]["b_opt_cap"] == _rule(sel), label
    assert "error" in curves["opt-1.3b 130"]  # its batch-1 run failed at the authors' (no T(1))
    for name in ("own_sweep", "advisor"):
        assert (out / f"bca_{name}.json").is_file()
        assert (out / f"bca_{name}.md").read_text().startswith("| curve")
    # each run's recorded command line gives the practitioner's command the same answer
    from papers.batching import advise

    for name, r in summary["runs"].items():
        results, settings, _ = advise.run(r["argv"])
        saved = json.loads((out / f"bca_{name}.json").read_text())
        assert json.loads(json.dumps({"settings": settings, "results": results})) == saved, name


def test_bca_step_skips_a_missing_own_sweep_but_still_advises_the_authors(tmp_path):
    summary = run_entry(bca, "batching/bca", tmp_path)
    assert summary["runs"]["own_sweep"]["status"] == "missing"
    assert "papers.batching.sweep" in summary["runs"]["own_sweep"]["reason"]
    assert summary["runs"]["advisor"]["status"] == "ok"


def test_bca_step_bad_epsilon_exits_2(tiny_results):
    with pytest.raises(SystemExit) as exc:
        run_entry(bca, "batching/bca", tiny_results, "advise.epsilon=1.5")
    assert exc.value.code == 2


def test_bca_runs_follow_the_shared_settings_unless_they_set_their_own():
    from omegaconf import OmegaConf

    import papers.batching.config  # noqa: F401

    cfg = compose("batching/bca", ["advise.epsilon=0.3", "authors_runs.background.ref_batch=64"])
    runs = OmegaConf.to_container(cfg.authors_runs, resolve=True)
    assert runs["advisor"]["epsilon"] == 0.3 and runs["advisor_eps0"]["epsilon"] == 0.0
    assert runs["background"]["ref_batch"] == 64 and runs["advisor"]["ref_batch"] == 32
    assert runs["advisor_no_preempted"]["exclude_preempted"] and not runs["advisor"]["exclude_preempted"]
    # an entry is typed by the advisor's settings dataclass: a misspelt key or a wrong type fails composing
    for override, key in (
        ("authors_runs.advisor.epslion=0", "epslion"),
        ("authors_runs.advisor.output_len=long", "output_len"),
        ("+authors_runs.new.sweep_file=x.csv", "sweep_file"),
    ):
        with pytest.raises(ConfigCompositionException) as err:
            compose("batching/bca", [override])
        assert key in str(err.value) + str(err.value.__cause__), override


def test_bca_step_checks_every_run_before_computing_any(tmp_path, capsys):
    """A bad value in the last run exits 2, naming its key, before anything is written."""
    with pytest.raises(SystemExit) as exc:
        run_entry(bca, "batching/bca", tmp_path, "authors_runs.background.kv_unit=percent")
    assert exc.value.code == 2
    assert "authors_runs.background.kv_unit: 'percent' is not one of pct, bytes" in capsys.readouterr().err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
