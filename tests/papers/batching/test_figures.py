"""figures.py rebuilds every figure from a saved tiny result set, and only reads it."""

import pytest

from papers.batching import bca, breakdown, calibrate, figures, ncu, study, tune
from tests.papers.batching.helpers import run_entry
from tests.papers.batching.test_tune import TINY

DRAWN = (
    "fig2_throughput_vs_itl",
    "fig3_throughput_vs_kv",
    "fig4_prefill_decode",
    "throughput_scaling_normalised",
    "fig5_breakdown",
    "bca_choice",
    "bca_memory_freed",
    "step_model_held_out",
    "tune_vs_sweep",
)


@pytest.fixture(scope="module")
def saved(tiny_results):
    """Every step of the reproduction but replication, tiny, into the session's results dir."""
    results = tiny_results
    run_entry(study, "batching/study", results)
    run_entry(
        breakdown,
        "batching/breakdown",
        results,
        "models=[opt-tiny]",
        "batch_sizes=[1,4]",
        "prompt_len=4",
        "decode_steps=2",
        "progress=false",
    )
    run_entry(ncu, "batching/ncu", results)
    run_entry(bca, "batching/bca", results)
    run_entry(calibrate, "batching/calibrate", results)
    run_entry(tune, "batching/tune", results, *TINY, "compare_sweep=true")
    return results


def _snapshot(root):
    """Every file the experiments wrote (the figures command's own run record aside)."""
    return {
        p: p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and "figures" not in p.relative_to(root).parts
    }


def draw(results, out, *overrides):
    return run_entry(figures, "batching/figures", results, f"paths.figures_dir={out}", *overrides)


def test_every_figure_from_saved_results_only(saved, tmp_path, caplog):
    before = _snapshot(saved / "batching")
    with caplog.at_level("INFO", logger="papers.batching.figures"):
        written = draw(saved, tmp_path)
    assert _snapshot(saved / "batching") == before  # read only: nothing recomputed or rewritten
    out = tmp_path / "batching"
    for name in DRAWN:
        for ext in ("png", "pdf"):
            assert (out / f"{name}_smoke.{ext}").stat().st_size > 1000, name  # the scale in every name
            assert str(out / f"{name}_smoke.{ext}") in written
    table = (out / "results_smoke.md").read_text()
    assert "opt-tiny fixed-4-3" in table and "| opt-1.3b | 192 (175) |" in table  # ours beside the authors'
    assert "status: missing (no CUDA device" in table
    if not (out / "fig6_ncu_smoke.png").exists():  # no GPU here: the reason is said, not a blank figure drawn
        assert "fig6_ncu not drawn: no CUDA device" in caplog.text
    assert (
        "replicate: no results at scale=smoke (skipped)" in caplog.text
        or (saved / "batching" / "replicate" / "smoke" / "summary.json").exists()
    )


def test_the_paper_scale_never_overwrites_the_smoke_figures(saved, tmp_path):
    """scale=paper reads the paper-scale results (none here), so it draws nothing and exits 2."""
    draw(saved, tmp_path)
    smoke = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batching").iterdir()}
    with pytest.raises(SystemExit) as exc:
        draw(saved, tmp_path, "scale=paper")
    assert exc.value.code == 2
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "batching").iterdir()} == smoke


@pytest.mark.slow  # needs the replication run (tiny_replication)
def test_replication_figure_and_table(saved, tiny_replication, tmp_path):
    draw(saved, tmp_path)
    assert (tmp_path / "batching" / "replication_smoke.png").stat().st_size > 1000
    table = (tmp_path / "batching" / "results_smoke.md").read_text()
    assert "## Replication on CPU" in table and "- 2x2 vs 1x8: throughput x" in table


def test_no_results_exits_2(tmp_path, caplog):
    with pytest.raises(SystemExit) as exc:
        draw(tmp_path, tmp_path / "figs")
    assert exc.value.code == 2
    assert "bad input: no batching results" in caplog.text
    assert not (tmp_path / "figs").exists() and not any((tmp_path / "runs").iterdir())
