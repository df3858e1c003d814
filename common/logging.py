"""Logging for every run: standard logging to the console and the run dir, and an experiment logger.

The experiment logger always writes `metrics.jsonl` next to the results, so nothing depends on a
service being reachable; wandb is an opt-in mirror (`logger=wandb`), offline unless the user sets
`logger.wandb_mode=online`, and is finished with the run's exit status even when the run fails.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.results import _clean

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_SUMMARY_CELLS = 500  # beyond this many cells the table (and the artifact) carry them


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flat(row: Mapping[str, Any]) -> dict:
    """A result row as one table record: parameters, metrics, status; nested values as JSON text."""
    out = {
        **row["cell"],
        **{f"metrics.{k}": v for k, v in (row.get("metrics") or {}).items()},
        "status": row["status"],
        "error": row.get("error") or "",
        "duration_s": row.get("duration_s"),
    }
    return {
        k: json.dumps(v, sort_keys=True, default=str) if isinstance(v, (list, dict)) else v
        for k, v in _clean(out).items()
    }


def get_logger(name: str) -> logging.Logger:
    """The standard library's logger of that name; setup_logging decides where it writes."""
    return logging.getLogger(name)


def setup_logging(run_dir: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    """Console plus `<run_dir>/run.log`; idempotent, so tests and notebooks can call it freely."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):  # hydra's console handler would print every line twice
        if type(handler) is logging.StreamHandler and not getattr(handler, "_common_console", False):
            root.removeHandler(handler)
    if not any(getattr(h, "_common_console", False) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        console._common_console = True
        root.addHandler(console)
    if run_dir is not None:
        path = Path(run_dir) / "run.log"
        if not any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            root.addHandler(handler)


class JsonlBackend:
    """One JSON object per event: scalars, tables (as records) and figure paths."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", buffering=1)

    def _write(self, event: dict) -> None:
        event = {"time": time.time(), **event}
        self._fh.write(json.dumps(_clean(event), default=str) + "\n")

    def log(self, scalars: Mapping[str, Any], step: int | None) -> None:
        """Scalar values at `step` (None where the caller has no step)."""
        self._write({"kind": "scalars", "step": step, "values": dict(scalars)})

    def table(self, name: str, records: list[dict]) -> None:
        """A table as its list of records."""
        self._write({"kind": "table", "name": name, "records": records})

    def figure(self, name: str, path: Path) -> None:
        """A figure by the path of its image file (the image itself is not copied)."""
        self._write({"kind": "figure", "name": name, "path": str(path)})

    def define_x(self, axis: str, metrics: str) -> None:
        """Record that `metrics` (a glob) are plotted against `axis`, as wandb's define_metric does."""
        self._write({"kind": "define_x", "axis": axis, "metrics": metrics})

    def summary(self, values: Mapping[str, Any]) -> None:
        """The run's summary values (wandb's run summary)."""
        self._write({"kind": "summary", "values": dict(values)})

    def artifact(self, name: str, kind: str, files: dict[str, Path], metadata: dict) -> None:
        """Only the files' names and paths are recorded (the files stay put); metadata is wandb's."""
        self._write(
            {"kind": "artifact", "name": name, "type": kind, "files": {k: str(v) for k, v in files.items()}}
        )

    def finish(self, exit_code: int) -> None:
        """Record the exit status and close the file; nothing may be logged after it."""
        self._write({"kind": "finish", "exit_code": exit_code})
        self._fh.close()


class WandbBackend:
    """The same events mirrored to wandb; imported only when chosen, as wandb is slow to import.

    The command line wandb records has secret values scrubbed.
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict,
        project: str,
        entity: str | None,
        group: str | None,
        mode: str,
        name: str | None,
        tags: list[str],
    ):
        import wandb  # imported only when asked for: it is slow to import

        from common.runinfo import scrub_override

        self._wandb = wandb
        argv = sys.argv
        sys.argv = [scrub_override(a) for a in argv]  # wandb records the command line of the run
        try:
            self.run = wandb.init(
                project=project,
                entity=entity,
                group=group,
                name=name,
                tags=tags,
                mode=mode,
                dir=str(run_dir),
                config=config,
                reinit="create_new",
            )
        finally:
            sys.argv = argv

    def log(self, scalars: Mapping[str, Any], step: int | None) -> None:
        """wandb.log at `step` (None: wandb's own counter)."""
        self.run.log(dict(scalars), step=step)

    def table(self, name: str, records: list[dict]) -> None:
        """A wandb.Table with every key of the records as a column; nothing for no records."""
        if not records:
            return
        columns = sorted({k for r in records for k in r})
        data = [[r.get(c) for c in columns] for r in records]
        self.run.log({name: self._wandb.Table(columns=columns, data=data)})

    def figure(self, name: str, path: Path) -> None:
        """The image file as a wandb.Image."""
        self.run.log({name: self._wandb.Image(str(path))})

    def define_x(self, axis: str, metrics: str) -> None:
        """Plot `metrics` (a glob) against `axis` in wandb's charts."""
        self.run.define_metric(axis)
        self.run.define_metric(metrics, step_metric=axis)

    def summary(self, values: Mapping[str, Any]) -> None:
        """Update the wandb run's summary."""
        self.run.summary.update(dict(values))

    def artifact(self, name: str, kind: str, files: dict[str, Path], metadata: dict) -> None:
        """The files as one wandb artifact of type `kind`, each under its name in `files`."""
        art = self._wandb.Artifact(name, type=kind, metadata=metadata)
        for arcname, path in files.items():
            art.add_file(str(path), name=arcname)
        self.run.log_artifact(art)

    def finish(self, exit_code: int) -> None:
        """Finish the wandb run with the exit status, so a failed run shows as failed there."""
        self.run.finish(exit_code=exit_code)


class ExperimentLogger:
    """Fans each event out to the configured backends."""

    def __init__(self, backends: list):
        self.backends = backends

    @classmethod
    def from_config(
        cls,
        logger_cfg: Mapping,
        run_dir: Path,
        config: dict,
        group: str | None = None,
        name: str | None = None,
    ) -> ExperimentLogger:
        """The backends logger_cfg.backend names: none, jsonl, or jsonl plus wandb.

        wandb is offline unless logger.wandb_mode or WANDB_MODE says otherwise; ValueError for others.
        """
        backend = logger_cfg.get("backend", "jsonl")
        if backend == "none":
            return cls([])
        backends: list = [JsonlBackend(run_dir)]
        if backend == "wandb":
            mode = logger_cfg.get("wandb_mode") or os.environ.get("WANDB_MODE") or "offline"
            backends.append(
                WandbBackend(
                    run_dir,
                    config,
                    project=logger_cfg.get("wandb_project") or "mlsys-repro",
                    entity=logger_cfg.get("wandb_entity"),
                    group=logger_cfg.get("wandb_group") or group,
                    mode=mode,
                    name=name,
                    tags=list(logger_cfg.get("wandb_tags") or []),
                )
            )
        elif backend != "jsonl":
            raise ValueError(f"logger.backend must be none, jsonl or wandb, not {backend!r}")
        return cls(backends)

    def log(self, scalars: Mapping[str, Any], step: int | None = None) -> None:
        """Scalars to every backend; step None where the caller has no step."""
        if "cells" in scalars:  # wandb would keep one of the two under the same key
            raise ValueError(
                "'cells' is the run's table of cells (log_results): log the scalar under another key"
            )
        for b in self.backends:
            b.log(scalars, step)

    def log_cell(self, row: Mapping[str, Any]) -> None:
        """A finished (or failed) sweep cell as one event: its numeric parameters (`cell/<key>`, the
        axes a chart can plot against) and numeric metrics (`metrics/<key>`). Strings and lists go to
        the run's `cells` table (`log_results`), not to the history."""
        values = {f"cell/{k}": v for k, v in row["cell"].items() if _number(v)}
        values.update({f"metrics/{k}": v for k, v in (row.get("metrics") or {}).items() if _number(v)})
        values["cell_failed"] = int(row["status"] != "ok")
        self.log(values)

    def define_x(self, axis: str, metrics: str = "metrics/*") -> None:
        """Plot `metrics` (a glob of logged keys) against `axis`: by default every cell metric against a
        sweep axis given as a cell parameter (`batch_size`, `round`); a training curve passes its own
        keys (`train/loss/step`, `train/loss/*`)."""
        axis = axis if "/" in axis else f"cell/{axis}"
        for b in self.backends:
            b.define_x(axis, metrics)

    def log_results(self, rows: list[dict], files: dict[str, Path], name: str, metadata: dict) -> None:
        """What a run computed, for whoever reads it in wandb: its cells as a table (`cells`), every
        numeric metric in the summary keyed by the axes that vary between cells
        (`cells/batch_size=8/throughput`), and its result files as one artifact with the config."""
        if rows:
            self.table("cells", [_flat(r) for r in rows])

            def varies(key: str) -> bool:
                return len({json.dumps(r["cell"].get(key), sort_keys=True, default=str) for r in rows}) > 1

            axes = [k for k in rows[0]["cell"] if varies(k)]
            summary = {}
            for r in rows[:MAX_SUMMARY_CELLS]:
                where = "/".join(f"{k}={r['cell'].get(k)}" for k in axes)
                for k, v in (r.get("metrics") or {}).items():
                    if _number(v):
                        summary["/".join(filter(None, ("cells", where, k)))] = v
            summary["cells/failed"] = sum(r["status"] != "ok" for r in rows)
            summary["cells/total"] = len(rows)
            for b in self.backends:
                b.summary(_clean(summary))
        if files:
            for b in self.backends:
                b.artifact(name, "results", files, _clean(metadata))

    def table(self, name: str, records) -> None:
        """A table (records or a DataFrame) to every backend, NaN written as null."""
        if hasattr(records, "to_dict"):
            records = records.to_dict(orient="records")
        records = [_clean(dict(r)) for r in records]
        for b in self.backends:
            b.table(name, records)

    def figure(self, name: str, path: str | os.PathLike) -> None:
        """A saved figure, by its image's path, to every backend."""
        for b in self.backends:
            b.figure(name, Path(path))

    def finish(self, exit_code: int = 0) -> None:
        """Finish every backend with the exit status; later events go nowhere."""
        for b in self.backends:
            b.finish(exit_code)
        self.backends = []
