"""figures.py rebuilds every figure from a saved tiny result set, and only reads it."""

import pytest

from papers.batching import bca, breakdown, figures, ncu, study
from tests.papers.batching.helpers import run_entry

DRAWN = ("fig2_throughput_vs_itl", "fig3_throughput_vs_kv", "fig4_prefill_decode",
         "throughput_scaling_normalised", "fig5_breakdown", "bca_choice")


@pytest.fixture(scope="module")
def saved(tiny_results):
    """Every step of the reproduction but replication, tiny, into the session's results dir."""
    results = tiny_results
    run_entry(study, "batching/study", results)
    run_entry(breakdown, "batching/breakdown", results, "models=[opt-tiny]", "batch_sizes=[1,4]",
              "prompt_len=4", "decode_steps=2", "progress=false")
    run_entry(ncu, "batching/ncu", results)
    run_entry(bca, "batching/bca", results)
    return results


def _snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_every_figure_from_saved_results_only(saved, tmp_path, capsys):
    before = _snapshot(saved / "batching")
    assert figures.main(["--results-dir", str(saved), "--out", str(tmp_path)]) == 0
    assert _snapshot(saved / "batching") == before  # read only: nothing recomputed or rewritten
    for name in DRAWN:
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000, name
    table = (tmp_path / "results_smoke.md").read_text()
    assert "opt-tiny fixed-4-3" in table and "| opt-1.3b | 192 (175) |" in table  # ours beside the authors'
    assert "status: missing (no CUDA device" in table
    out = capsys.readouterr().out
    if "fig6_ncu.png" not in out:  # no GPU here: the reason is said, not a blank figure drawn
        assert not (tmp_path / "fig6_ncu.png").exists() and "fig6_ncu not drawn: no CUDA device" in out


@pytest.mark.slow  # needs the replication run (tiny_replication)
def test_replication_figure_and_table(saved, tiny_replication, tmp_path):
    assert figures.main(["--results-dir", str(saved), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "replication.png").stat().st_size > 1000
    table = (tmp_path / "results_smoke.md").read_text()
    assert "## Replication on CPU" in table and "- 2x2 vs 1x8: throughput x" in table


def test_no_results_exits_2(tmp_path, capsys):
    assert figures.main(["--results-dir", str(tmp_path), "--out", str(tmp_path / "figs")]) == 2
    assert "no batching results" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()
