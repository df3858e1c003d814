"""The static HTML report: self-contained, every image loads in a real browser, no console errors."""

import re
from pathlib import Path

import pytest

from common import report
from common.plotting import FigureOut, new_figure, save
from common.repo import PAPERS, REPO_ROOT
from tests.browser import chromium, inspect_page

README = "# Demo paper\n\n## Results\n\n| metric | ours | paper |\n|---|---|---|\n| x | 1.0 | 1.1 |\n\n" \
    "![curve](figures/curve_smoke.png)\n"


def _fake_paper(tmp_path: Path) -> tuple[Path, Path]:
    figures = tmp_path / "figures"
    (tmp_path / "README.md").write_text(README)
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3, 1, 2])
    save(fig, "curve", FigureOut(figures, "smoke"), source="CPU test")
    fig, ax = new_figure()
    ax.bar([0, 1], [1, 2])
    save(fig, "bars", FigureOut(figures, "smoke"))
    return figures, tmp_path / "results"


def test_markdown_subset_renders_tables_code_and_images(tmp_path):
    figures, _ = _fake_paper(tmp_path)
    md = ("# Title\n\nSome `code` and **bold**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
          "- one\n- two\n\n```bash\nmake test\n```\n\n![curve](figures/curve_smoke.png)\n")
    html, used = report.markdown_to_html(md, tmp_path)
    assert "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>" in html
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html
    assert "<li>one</li><li>two</li>" in html and "make test" in html
    assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html)
    assert used == {"figures/curve_smoke.png"}


def test_report_is_self_contained(tmp_path):
    figures, results = _fake_paper(tmp_path)
    out = report.build("demo", figures_dir=figures, results_dir=results, out=tmp_path / "report.html",
                       readme=tmp_path / "README.md")
    page = out.read_text()
    assert "Provenance" in page and "Commit" in page
    assert page.count("data:image/png;base64,") == 2  # the README's figure and the other one
    assert "<td>1.0</td><td>1.1</td>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page.split("</style>")[0])  # no remote assets


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
def test_report_opens_in_headless_chromium(tmp_path):
    figures, results = _fake_paper(tmp_path)
    out = report.build("demo", figures_dir=figures, results_dir=results, out=tmp_path / "report.html",
                       readme=tmp_path / "README.md")
    shot = tmp_path / "report.png"
    seen = inspect_page(out, shot)
    assert seen["ready"] == "complete"
    assert seen["images"] and all(img["ok"] for img in seen["images"]), seen["images"]
    assert seen["errors"] == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (.ci/run installs it)")
@pytest.mark.parametrize("paper", PAPERS)
def test_each_built_paper_report_passes_the_browser(paper, tmp_path):
    figures = REPO_ROOT / "figures" / paper
    if not (REPO_ROOT / "papers" / paper / "figures.py").exists() or not any(figures.glob("*.png")):
        pytest.skip(f"{paper}: no regenerated figures yet (make reproduce-{paper})")
    out = report.build(paper, figures_dir=figures, results_dir=REPO_ROOT / "results",
                       out=tmp_path / "report.html")  # never write into the checkout
    seen = inspect_page(out, tmp_path / f"{paper}.png")
    assert all(img["ok"] for img in seen["images"]) and seen["errors"] == []
