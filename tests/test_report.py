"""The report from data: tables computed from the result stores, provenance, a run table, working
anchors and links, self-contained; and each paper's report opens in a real browser."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from common import report
from common.plotting import FigureOut, new_figure, save
from common.repo import PAPERS, REPO_ROOT
from tests.browser import broken_links, chromium, inspect_page

PY = sys.executable


def _figure(figures: Path, name: str) -> None:
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3, 1, 2])
    save(fig, name, FigureOut(figures, "smoke"), source="CPU test")


def _demo_report(tmp_path: Path) -> report.Report:
    return report.Report(
        paper="demo",
        title="Demo: a report",
        intro="See [the design](../DESIGN.md) and [below](#numbers).",
        sections=[
            report.Section(
                "Numbers",
                prose="Ours beside the paper's.",
                tables=[
                    report.Table(
                        "Throughput",
                        [{"batch": 1, "ours": 1.23456, "paper": 1.1}],
                        formats={"ours": ".2f"},
                        sources=["sweep"],
                        reference="the paper's Table 2",
                    )
                ],
                figures=[report.Figure("curve", "a curve")],
            )
        ],
    )


def test_tables_provenance_and_figures_are_in_one_self_contained_file(tmp_path):
    figures = tmp_path / "figures"
    _figure(figures, "curve")
    (tmp_path / "DESIGN.md").write_text("# design\n")
    (tmp_path / "paper").mkdir()
    out = report.render(
        _demo_report(tmp_path),
        tmp_path / "results",
        figures,
        "smoke",
        tmp_path / "out" / "report.html",
        base=tmp_path / "paper",
    )
    page = out.read_text()
    assert "<td>1</td><td>1.23</td><td>1.1</td>" in page  # the format spec applied
    assert "sweep: no run at scale smoke" in page and "published numbers: the paper&#39;s Table 2" in page
    assert page.count("data:image/png;base64,") == 1 and 'id="numbers"' in page
    assert 'href="../DESIGN.md"' in page  # relative to the report, from the paper's folder
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no remote assets


def test_the_report_follows_the_results(demo_app, tmp_path):
    """Rerun with another seed: the next report's table changes (nothing is read from README text)."""
    results, figures = tmp_path / "results", tmp_path / "figures"

    def run_and_report(seed: int) -> str:
        proc = subprocess.run(
            [PY, str(demo_app / "app.py"), f"paths.results_dir={results}", f"seed={seed}", "n=2"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=demo_app,
        )
        assert proc.returncode == 0, proc.stderr
        rep = report.Report(
            "demo",
            "demo",
            "",
            [report.Section("Stores", tables=report.store_tables(results, "demo", "smoke"))],
        )
        out = report.render(rep, results, figures, "smoke", tmp_path / f"report{seed}.html", tmp_path)
        return out.read_text()

    first, second = run_and_report(0), run_and_report(1)
    tables = [
        re.search(r"<h3 id=\"exp-every-finished-cell\">.*?</table>", p, re.S).group(0)
        for p in (first, second)
    ]
    assert tables[0] != tables[1] and tables[1].count("<tr>") == 5  # header + 2 cells x 2 seeds
    assert "command</th>" in second and ">exp</td>" in second  # the run table lists the run


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_the_report_opens_in_headless_chromium_with_working_anchors_and_links(tmp_path):
    figures = tmp_path / "figures"
    _figure(figures, "curve")
    (tmp_path / "DESIGN.md").write_text("# design\n")
    out = report.render(
        _demo_report(tmp_path),
        tmp_path / "results",
        figures,
        "smoke",
        tmp_path / "out" / "report.html",
        base=tmp_path / "paper",
    )
    seen = inspect_page(out, tmp_path / "shot.png")
    assert seen["ready"] == "complete" and seen["errors"] == []
    assert seen["images"] and all(img["ok"] for img in seen["images"]), seen["images"]
    assert len(seen["links"]) >= 4 and broken_links(seen) == []
    bad = tmp_path / "bad.html"
    bad.write_text(
        out.read_text()
        .replace('href="#numbers"', 'href="#nowhere"')
        .replace('href="../DESIGN.md"', 'href="../MISSING.md"')
    )
    assert set(broken_links(inspect_page(bad, tmp_path / "bad.png"))) == {"#nowhere", "../MISSING.md"}


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
@pytest.mark.parametrize("paper", PAPERS)
def test_each_paper_report_passes_the_browser(paper, tmp_path):
    """The committed figures and whatever results exist: no console error, broken image or link."""
    proc = subprocess.run(
        [
            PY,
            "-m",
            f"papers.{paper}.report",
            f"out={tmp_path / 'report.html'}",
            f"paths.results_dir={tmp_path / 'results'}",
            "logger=none",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    seen = inspect_page(tmp_path / "report.html", tmp_path / f"{paper}.png")
    assert seen["images"] and all(img["ok"] for img in seen["images"]) and seen["errors"] == []
    assert broken_links(seen) == []
