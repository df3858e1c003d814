"""A paper's report, built from its result stores and reference tables: one self-contained HTML file
(and, where wandb is online, a wandb Report of the same runs).

Each paper's `report.py` command says what its report holds (`Report`: sections of prose, tables
computed from the result stores and the authors' published numbers, figures by name); this module
renders it. Nothing is read from README text, so the numbers follow the results: rerun an experiment
and the next report shows the new table. Every table says which runs produced it (commit, hardware,
scale), and the run table lists the newest run of every command with its status, failed cells and
duration. Figures are embedded as data URIs, so the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.atomic import write_atomic
from common.repo import REPO_ROOT
from common.runinfo import git_state
from common.schema import RunConfig, spec

TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html.j2"


@dataclass
class Table:
    """Rows computed from result stores (and reference tables), with where they came from."""

    title: str
    records: list[dict] = field(default_factory=list)
    columns: list[str] | None = None  # None: the keys of the first record, in order
    markdown: str = ""  # or the table already written as markdown by the paper's own table code
    note: str = ""  # markdown below the table
    sources: list[str] = field(default_factory=list)  # the paper's experiments whose runs it reads
    reference: str = ""  # where the published numbers in it come from
    formats: dict[str, str] = field(default_factory=dict)  # column -> format spec, e.g. ".3f"
    empty: str = "run the experiment first"  # shown when there are no records


@dataclass
class Figure:
    """A figure by name; the report embeds its `<name>_<scale>.png`, or says that it is missing."""

    name: str  # the figure's name without the scale: figures/<paper>/<name>_<scale>.png
    caption: str = ""


@dataclass
class Section:
    """One heading of the report: prose, then its tables and figures."""

    title: str
    prose: str = ""  # markdown
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class LinePlot:
    """A wandb Report panel: metric(s) against the experiment's sweep axis (logged by its runs)."""

    experiment: str
    x: str  # e.g. cell/batch_size (common.logging.ExperimentLogger.define_x)
    y: list[str]
    title: str


@dataclass
class Report:
    """What a paper's report holds; the same object renders the HTML report and the wandb Report."""

    paper: str
    title: str
    intro: str
    sections: list[Section]
    plots: list[LinePlot] = field(default_factory=list)


@dataclass
class ReportConfig(RunConfig):
    """A paper's report command: the HTML report, and a wandb Report where wandb is online."""

    wandb: bool = spec(False, free="on or off")  # also build a wandb Report (WANDB_API_KEY, online)
    out: str = spec("${paths.figures_dir}/${paper}/report_${scale.name}.html", free="a file path")


# ---- runs -----------------------------------------------------------------------------------------
def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a run killed mid-line
    return out


def latest_runs(results_dir: Path, paper: str, scale: str) -> dict[str, dict]:
    """The newest run of every command of `paper` at `scale`: experiment -> facts about it."""
    out = {}
    for runs in sorted((results_dir / paper).glob(f"*/{scale}/runs")):
        dirs = sorted(d for d in runs.iterdir() if (d / "runinfo.json").is_file())
        if not dirs:
            continue
        run_dir = dirs[-1]
        info = json.loads((run_dir / "runinfo.json").read_text())
        events = _events(run_dir)
        finish = next((e for e in reversed(events) if e.get("kind") == "finish"), None)
        summary = {k: v for e in events if e.get("kind") == "summary" for k, v in e["values"].items()}
        started = datetime.strptime(info["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        out[runs.parent.parent.name] = {
            "run_dir": run_dir,
            "started": info["time"],
            "commit": (info["git"]["sha"] or "?")[:10] + ("+dirty" if info["git"]["dirty"] else ""),
            "hardware": info["hardware"]["device"],
            "overrides": " ".join(a for a in info.get("argv", [])[1:] if "=" in a),
            "status": "no log (logger=none)"
            if not events
            else (
                "running or killed"
                if finish is None
                else ("ok" if finish["exit_code"] == 0 else f"failed (exit {finish['exit_code']})")
            ),
            "cells": ""
            if "cells/total" not in summary
            else f"{summary['cells/total'] - summary['cells/failed']} ok, {summary['cells/failed']} failed",
            "duration": "" if finish is None else f"{finish['time'] - started:.0f} s",
        }
    return out


def _provenance(table: Table, runs: dict[str, dict], scale: str) -> str:
    parts = []
    for exp in table.sources:
        r = runs.get(exp)
        parts.append(
            f"{exp}: no run at scale {scale}"
            if r is None
            else f"{exp}: run of {r['started']} at commit {r['commit']} on {r['hardware']}"
        )
    if table.reference:
        parts.append(f"published numbers: {table.reference}")
    return "; ".join(parts) or "computed from the files named above"


# ---- rendering ------------------------------------------------------------------------------------
def _slug(text: str, seen: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in seen:
        slug, n = f"{base}-{n}", n + 1
    seen.add(slug)
    return slug


def _cell(value: Any, fmt: str | None) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _markdown(base: Path, out_dir: Path):
    """Markdown to HTML with relative links rewritten from `base` (the paper's folder) to `out_dir`."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    default = md.renderer.rules.get("link_open")

    def link_open(self, tokens, idx, options, env):
        href = tokens[idx].attrGet("href") or ""
        if href and not re.match(r"^([a-z]+:|#|/)", href):
            path, _, anchor = href.partition("#")
            target = os.path.relpath((base / path).resolve(), out_dir.resolve())
            tokens[idx].attrSet("href", target + (f"#{anchor}" if anchor else ""))
        if default is not None:
            return default(tokens, idx, options, env)
        return md.renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md.render


def render(report: Report, results_dir: Path, figures_dir: Path, scale: str, out: Path, base: Path) -> Path:
    """Write the report to `out`; `base` is the folder relative links in its prose start from."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    markdown = _markdown(base, out.parent)
    env = Environment(loader=FileSystemLoader(TEMPLATE.parent), autoescape=select_autoescape(["j2", "html"]))
    env.filters["markdown"] = lambda text: Markup(markdown(text or ""))
    runs = latest_runs(results_dir, report.paper, scale)
    seen: set[str] = {"top", "contents", "runs"}
    sections = []
    for s in report.sections:
        tables = []
        for t in s.tables:
            columns = t.columns or (list(t.records[0]) if t.records else [])
            tables.append(
                {
                    "title": t.title,
                    "anchor": _slug(t.title, seen),
                    "columns": columns,
                    "rows": [[_cell(r.get(c), t.formats.get(c)) for c in columns] for r in t.records],
                    "markdown": t.markdown,
                    "note": t.note,
                    "empty": t.empty,
                    "provenance": _provenance(t, runs, scale),
                }
            )
        figures = []
        for f in s.figures:
            path = figures_dir / f"{f.name}_{scale}.png"
            figures.append(
                {
                    "name": f.name,
                    "caption": f.caption,
                    "file": path.name,
                    "anchor": _slug(f"figure {f.name}", seen),
                    "data": base64.b64encode(path.read_bytes()).decode() if path.is_file() else None,
                }
            )
        sections.append(
            {
                "title": s.title,
                "anchor": _slug(s.title, seen),
                "prose": s.prose,
                "tables": tables,
                "figures": figures,
            }
        )
    columns = ["command", "started", "commit", "hardware", "status", "cells", "duration", "overrides"]
    run_rows = [
        [
            exp,
            r["started"],
            r["commit"],
            r["hardware"],
            r["status"],
            r["cells"],
            r["duration"],
            r["overrides"],
        ]
        for exp, r in sorted(runs.items())
    ]
    page = env.get_template(TEMPLATE.name).render(
        report=report,
        sections=sections,
        runs={"columns": columns, "rows": run_rows},
        scale=scale,
        results_dir=results_dir,
        figures_dir=figures_dir,
        git=git_state(),
        built=time.strftime("%Y-%m-%d %H:%M:%S %z"),
    )
    write_atomic(out, page)
    return out


# ---- wandb ----------------------------------------------------------------------------------------
def report_blocks(
    paper: str, figures: list[str], entity: str, project: str, html_name: str, plots: list[LinePlot] = ()
) -> list:
    """The wandb Report's body: the figures run's images (media keys `figures/<name>`), a line plot per
    `LinePlot` over the runs of its experiment, then every run of the paper grouped by sweep."""
    import wandb_workspaces.reports.v2 as wr

    figures_run = wr.Runset(
        entity=entity,
        project=project,
        name=f"{paper} figures",
        filters=f"Config('paper') == '{paper}' and Config('experiment') == 'figures'",
    )
    runs = wr.Runset(
        entity=entity,
        project=project,
        name=f"{paper} runs",
        filters=f"Config('paper') == '{paper}'",
        groupby=["group"],
    )
    blocks = [
        wr.H1(text=f"{paper}: reproduction"),
        wr.P(
            text=f"Figures as the latest figures run logged them; the static report with the published "
            f"numbers beside ours is {html_name}."
        ),
        wr.PanelGrid(
            runsets=[figures_run],
            panels=[wr.MediaBrowser(title="figures", media_keys=figures, num_columns=2)],
        ),
    ]
    for experiment in dict.fromkeys(p.experiment for p in plots):
        runset = wr.Runset(
            entity=entity,
            project=project,
            name=f"{paper} {experiment}",
            filters=f"Config('paper') == '{paper}' and Config('experiment') == '{experiment}'",
        )
        panels = [wr.LinePlot(title=p.title, x=p.x, y=list(p.y)) for p in plots if p.experiment == experiment]
        blocks += [wr.H2(text=experiment), wr.PanelGrid(runsets=[runset], panels=panels)]
    blocks += [
        wr.H2(text="Runs, one group per sweep"),
        wr.PanelGrid(runsets=[runs], panels=[wr.RunComparer(diff_only="split")]),
    ]
    return blocks


def wandb_report(report: Report, html_path: Path, figures_dir: Path, scale: str) -> str | None:
    """A wandb Report of the paper's logged runs where wandb is reachable; offline, say so (None)."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled") or not os.environ.get("WANDB_API_KEY"):
        print(
            f"wandb is offline here (WANDB_MODE={mode or 'unset'}, no WANDB_API_KEY): "
            f"the report is {html_path}"
        )
        return None
    import wandb
    import wandb_workspaces.reports.v2 as wr

    keys = sorted(f"figures/{p.stem.removesuffix('_' + scale)}" for p in figures_dir.glob(f"*_{scale}.png"))
    project = os.environ.get("WANDB_PROJECT", "mlsys-repro")
    entity = os.environ.get("WANDB_ENTITY") or wandb.Api().default_entity
    wb = wr.Report(
        entity=entity,
        project=project,
        title=report.title,
        description=f"Runs of papers/{report.paper}; static copy: {html_path.name}",
        blocks=report_blocks(report.paper, keys, entity, project, html_path.name, report.plots),
    )
    wb.save()
    print(f"wandb report: {wb.url}")
    return wb.url


def run_report(report: Report, cfg, run) -> Path:
    """What a paper's report command does once it has built its `Report`: render, log, wandb."""
    figures_dir = Path(cfg.paths.figures_dir) / cfg.paper
    out = render(
        report,
        Path(cfg.paths.results_dir),
        figures_dir,
        cfg.scale.name,
        Path(cfg.out),
        REPO_ROOT / "papers" / cfg.paper,
    )
    run.logger.log({"report_tables": sum(len(s.tables) for s in report.sections)})
    if cfg.wandb:
        wandb_report(report, out, figures_dir, cfg.scale.name)
    return out


# ---- every store as a table: the part of a report no paper has to write ---------------------------
MAX_COLUMNS = 12


def store_tables(results_dir: Path, paper: str, scale: str) -> list[Table]:
    """One table per result store of `paper` at `scale`: its finished cells, with the parameters that
    vary between cells and the numeric metrics (the first MAX_COLUMNS columns)."""
    from common.results import ResultStore

    tables = []
    for path in sorted((results_dir / paper).glob(f"*/{scale}/results.jsonl")):
        experiment = path.parent.parent.name
        rows = list(ResultStore(path).latest().values())
        ok = [r for r in rows if r["status"] == "ok"]
        keys = list(dict.fromkeys(k for r in ok for k in r["cell"]))
        varying = [
            k
            for k in keys
            if len({json.dumps(r["cell"].get(k), sort_keys=True, default=str) for r in ok}) > 1
        ] or keys[:3]
        metrics = list(
            dict.fromkeys(
                k
                for r in ok
                for k, v in (r.get("metrics") or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            )
        )
        columns = (varying + metrics)[:MAX_COLUMNS]
        records = [{**{k: r["cell"].get(k) for k in varying}, **(r.get("metrics") or {})} for r in ok]
        failed = len(rows) - len(ok)
        tables.append(
            Table(
                title=f"{experiment}: every finished cell",
                records=records,
                columns=columns,
                sources=[experiment],
                note=f"{len(ok)} finished cells"
                + (f", {failed} failed (their errors are in the store)" if failed else "")
                + f"; the store: `{path}`.",
            )
        )
    return tables
