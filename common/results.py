"""Result store: one JSON row per finished sweep cell, so a sweep can die at any point and resume.

Rows are appended to a JSONL file under an exclusive lock (SLURM array tasks may share a store) with
one write per row followed by fsync. A process killed mid-write can leave a partial last line; readers
skip such a torn tail and the next writer cuts it off before appending, so no torn row is ever read.
The last row of a key wins, so a failed cell that is retried and succeeds reads as finished.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

STATUS_OK = "ok"
STATUS_FAILED = "failed"
REQUIRED_FIELDS = ("key", "cell", "status")


class ResultStoreError(ValueError):
    """A result file that does not follow the schema; the message names the file and line."""


def cell_key(cell: Mapping[str, Any]) -> str:
    """Canonical key of a cell: its parameters as sorted, compact JSON."""
    return json.dumps(dict(cell), sort_keys=True, separators=(",", ":"), default=str)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity; store them as null so every row parses with any JSON reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())  # numpy / torch scalars
    return value


class ResultStore:
    def __init__(self, path: str | os.PathLike, on_append: Callable[[dict], None] | None = None):
        self.path = Path(path)
        self.on_append = on_append  # e.g. mirror each finished cell to the experiment logger

    # ---- reading -------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """All complete rows, validated; a torn last line (no newline) is skipped."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        complete = data.split(b"\n")[:-1]  # what follows the last newline is torn (or empty)
        rows = []
        for lineno, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ResultStoreError(f"{self.path}:{lineno}: not valid JSON ({err.msg})") from None
            self._validate(row, lineno)
            rows.append(row)
        return rows

    def _validate(self, row: Any, lineno: int) -> None:
        if not isinstance(row, dict):
            raise ResultStoreError(f"{self.path}:{lineno}: a row must be a JSON object")
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise ResultStoreError(f"{self.path}:{lineno}: row lacks field(s) {missing}")
        if row["status"] not in (STATUS_OK, STATUS_FAILED):
            raise ResultStoreError(f"{self.path}:{lineno}: status {row['status']!r} is not ok/failed")
        if not isinstance(row["cell"], dict):
            raise ResultStoreError(f"{self.path}:{lineno}: field 'cell' must be an object")

    def latest(self) -> dict[str, dict]:
        """The last row of every key."""
        return {row["key"]: row for row in self.rows()}

    def done(self, cell: Mapping[str, Any], include_failed: bool = False) -> bool:
        row = self.latest().get(cell_key(cell))
        if row is None:
            return False
        return row["status"] == STATUS_OK or include_failed

    def load(self, status: str | None = STATUS_OK) -> pd.DataFrame:
        """Latest row per cell as a flat table: cell parameters, metrics, status and error."""
        records = []
        for row in self.latest().values():
            if status is not None and row["status"] != status:
                continue
            rec = dict(row["cell"])
            rec.update(row.get("metrics") or {})
            rec["status"] = row["status"]
            rec["error"] = row.get("error")
            rec["duration_s"] = row.get("duration_s")
            records.append(rec)
        return pd.DataFrame.from_records(records)

    # ---- writing -------------------------------------------------------------------------------
    def append(self, cell: Mapping[str, Any], status: str, metrics: Mapping | None = None,
               error: str | None = None, duration_s: float | None = None) -> dict:
        row = {
            "key": cell_key(cell),
            "cell": _clean(dict(cell)),
            "status": status,
            "metrics": _clean(dict(metrics or {})),
            "error": error,
            "duration_s": duration_s,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._validate(row, 0)
        line = (json.dumps(row, sort_keys=True, allow_nan=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cut_torn_tail(fd)
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        if self.on_append is not None:
            self.on_append(row)
        return row

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return
        os.lseek(fd, size - 1, os.SEEK_SET)
        if os.read(fd, 1) == b"\n":
            return
        # find the last newline; everything after it is a torn row from a killed writer
        pos, chunk = size, 4096
        while pos > 0:
            start = max(0, pos - chunk)
            os.lseek(fd, start, os.SEEK_SET)
            buf = os.read(fd, pos - start)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                os.ftruncate(fd, start + idx + 1)
                return
            pos = start
        os.ftruncate(fd, 0)

    def run_cell(self, cell: Mapping[str, Any], fn: Callable[[], Mapping | None],
                 skip_done: bool = True) -> dict | None:
        """Run one cell and record it. A raising cell is stored as failed and the sweep goes on.

        Returns the stored row, or None when the cell was already finished and skipped.
        """
        if skip_done and self.done(cell):
            return None
        start = time.perf_counter()
        try:
            metrics = fn() or {}
        except Exception as err:  # noqa: BLE001 - any cell failure (OOM included) is data
            summary = "".join(traceback.format_exception_only(type(err), err)).strip()
            return self.append(cell, STATUS_FAILED, error=summary,
                               duration_s=time.perf_counter() - start)
        return self.append(cell, STATUS_OK, metrics=metrics, duration_s=time.perf_counter() - start)
