"""A static, self-contained HTML report per paper: figures/<paper>/report.html.

It is the paper's README (its tables hold this project's numbers beside the published ones) with
every figure embedded as a data URI, plus where the numbers came from: the commit and the hardware
recorded in the runs' runinfo.json. One file that opens anywhere, offline, and can be attached to
an e-mail or a wandb report.

    python -m common.report paper=<paper> [wandb=true] [scale=paper]
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.repo import PAPERS, REPO_ROOT
from common.runinfo import git_state
from common.schema import RunConfig

log = logging.getLogger(__name__)

CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3}code,pre{background:#f6f6f6;border-radius:3px}pre{padding:.6em;overflow:auto}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:13px}
.prov{background:#f8f8f0;border:1px solid #e4e4d0;padding:.5em 1em;font-size:13px}
"""


def _inline(text: str, base: Path) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)

    def image(m: re.Match) -> str:
        return _img_tag(base / html.unescape(m.group(2)), m.group(1))

    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", image, text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', text)


def _img_tag(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<em>[missing figure: {html.escape(str(path.name))}]</em>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def markdown_to_html(text: str, base: Path) -> tuple[str, set[str]]:
    """The subset of Markdown our READMEs use: headings, paragraphs, lists, tables, code, images."""
    out, used = [], set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text))
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
        elif m := re.match(r"^(#{1,6})\s+(.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2), base)}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{_inline(c, base)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in r) + "</tr>"
                                 for r in body) + "</table>")
        elif re.match(r"^\s*([-*]|\d+\.)\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*([-*]|\d+\.)\s+|^\s{2,}\S", lines[i]):
                if re.match(r"^\s*([-*]|\d+\.)\s+", lines[i]):
                    items.append(re.sub(r"^\s*([-*]|\d+\.)\s+", "", lines[i]))
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(t, base)}</li>" for t in items) + "</ul>")
        elif not line.strip():
            i += 1
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||```|\s*[-*]\s)", lines[i]):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para), base)}</p>")
    return "\n".join(out), used


def run_hardware(paper: str, results_dir: Path) -> list[str]:
    """Every device the paper's runs recorded, newest run of each experiment first."""
    devices: dict[str, None] = {}
    for info in sorted((results_dir / paper).glob("**/runinfo.json"), reverse=True):
        try:
            hw = json.loads(info.read_text()).get("hardware", {})
        except (OSError, json.JSONDecodeError):
            continue
        devices.setdefault(f"{hw.get('device')} ({hw.get('torch_threads')} torch threads, "
                           f"host {hw.get('host')})", None)
    return list(devices)


def build(paper: str, figures_dir: Path, results_dir: Path, out: Path, readme: Path | None = None) -> Path:
    """Write the report of `paper` to `out` from its README, the figures and the runs' runinfo."""
    readme = readme or REPO_ROOT / "papers" / paper / "README.md"
    figures, results = figures_dir, results_dir
    body, used = markdown_to_html(readme.read_text(), readme.parent)
    used_names = {Path(u).name for u in used}
    extra = [p for p in sorted(figures.glob("*.png")) if p.name not in used_names]
    git = git_state()
    hardware = run_hardware(paper, results) or ["no runinfo.json found under results/ (figures only)"]
    prov = ("<div class='prov'><strong>Provenance.</strong> Commit "
            f"<code>{html.escape(str(git['sha']))}</code>{' (uncommitted changes)' if git['dirty'] else ''}."
            " Hardware of the runs: " + "; ".join(html.escape(h) for h in hardware) + ".</div>")
    gallery = "".join(f"<figure>{_img_tag(p, p.stem)}<figcaption>{html.escape(p.name)}</figcaption></figure>"
                      for p in extra)
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(paper)}"
            f" report</title><style>{CSS}</style></head><body>{prov}{body}"
            + (f"<h2>All figures</h2>{gallery}" if gallery else "") + "</body></html>")
    write_atomic(out, page)
    return out


def report_blocks(paper: str, figures: list[str], entity: str, project: str, html_name: str) -> list:
    """The Report's body: the figures run's images (media keys as `common.figure_log` logs them),
    then every run of the paper grouped by sweep, so each figure sits one click from its cells."""
    import wandb_workspaces.reports.v2 as wr

    figures_run = wr.Runset(entity=entity, project=project, name=f"{paper} figures",
                            filters=f"Config('paper') == '{paper}' and Config('experiment') == 'figures'")
    runs = wr.Runset(entity=entity, project=project, name=f"{paper} runs",
                     filters=f"Config('paper') == '{paper}'", groupby=["group"])
    return [
        wr.H1(text=f"{paper}: reproduction"),
        wr.P(text=f"Figures as the latest `reproduce-{paper}` logged them; the static copy with the "
                  f"published numbers beside ours is {html_name}."),
        wr.PanelGrid(runsets=[figures_run], panels=[wr.MediaBrowser(title="figures", media_keys=figures,
                                                                    num_columns=2)]),
        wr.H2(text="Runs, one group per sweep"),
        wr.PanelGrid(runsets=[runs], panels=[wr.RunComparer(diff_only="split")]),
    ]


def wandb_report(paper: str, html_path: Path, figures_dir: Path) -> int:
    """A wandb Report of the paper's logged runs, where wandb is reachable; offline, say so."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled") or not os.environ.get("WANDB_API_KEY"):
        print(f"wandb is offline here (WANDB_MODE={mode or 'unset'}, no WANDB_API_KEY): "
              f"the report is {html_path}")
        return 0
    import wandb
    import wandb_workspaces.reports.v2 as wr

    keys = sorted({f"figures/{p.stem.rsplit('_', 1)[0]}" for p in figures_dir.glob("*.png")})
    project = os.environ.get("WANDB_PROJECT", "mlsys-repro")
    entity = os.environ.get("WANDB_ENTITY") or wandb.Api().default_entity
    report = wr.Report(entity=entity, project=project, title=f"{paper}: reproduction",
                       description=f"Runs of papers/{paper}; static copy: {html_path.name}",
                       blocks=report_blocks(paper, keys, entity, project, html_path.name))
    report.save()
    print(f"wandb report: {report.url}")
    return 0


@dataclass
class ReportConfig(RunConfig):
    """`make report-<paper>`: the HTML report of one paper, and its wandb Report where wandb is online."""

    wandb: bool = False  # also build a wandb Report (needs WANDB_API_KEY and wandb online)
    out: str = "${paths.figures_dir}/${paper}/report.html"


@entrypoint("common/report", schema=ReportConfig)
def main(cfg, run):
    if cfg.paper not in PAPERS:
        raise BadInput(f"paper={cfg.paper!r} is not one of {', '.join(PAPERS)}")
    path = build(cfg.paper, figures_dir=Path(cfg.paths.figures_dir) / cfg.paper,
                 results_dir=Path(cfg.paths.results_dir), out=Path(cfg.out))
    log.info("report: %s", path)
    if cfg.wandb:
        wandb_report(cfg.paper, path, Path(cfg.paths.figures_dir) / cfg.paper)
    return str(path)


if __name__ == "__main__":
    main()
