"""Result store: one JSON row per finished sweep cell, so a sweep can die at any point and resume.

Rows are appended to a JSONL file under an exclusive lock (SLURM array tasks may share a store) with
one write per row followed by fsync. A process killed mid-write can leave a partial last line; readers
skip such a torn tail and the next writer cuts it off before appending, so no torn row is ever read.
The last row of a key wins, so a failed cell that is retried and succeeds reads as finished.

Before a cell is computed it is claimed: a claim file beside the store names the process (host, pid)
and is kept fresh while the cell runs, so two runs (or SLURM array tasks) on one store never compute a
cell twice. A claim whose process is gone (same host) or that has not been refreshed for `lease_s`
(another host) is stale and taken over. Values of keys that name a secret never reach a row.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from common.runinfo import scrub

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"
REQUIRED_FIELDS = ("key", "cell", "status")


class ResultStoreError(ValueError):
    """A result file that does not follow the schema; the message names the file and line."""


def cell_key(cell: Mapping[str, Any]) -> str:
    """Canonical key of a cell: its parameters as sorted, compact JSON."""
    return json.dumps(dict(cell), sort_keys=True, separators=(",", ":"), default=str)


def flat_table(rows: Iterable[Mapping[str, Any]]):
    """Store rows as a pandas DataFrame, one row each in the order given: cell parameters, metrics,
    status, error and duration."""
    import pandas as pd

    records = []
    for row in rows:
        rec = dict(row["cell"])
        rec.update(row.get("metrics") or {})
        rec["status"] = row["status"]
        rec["error"] = row.get("error")
        rec["duration_s"] = row.get("duration_s")
        records.append(rec)
    return pd.DataFrame.from_records(records)


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultStore:
    """One sweep's rows (results.jsonl): read, append, claim and run cells."""

    def __init__(
        self, path: str | os.PathLike, on_append: Callable[[dict], None] | None = None, lease_s: float = 600.0
    ):
        self.path = Path(path)
        self.on_append = on_append  # e.g. mirror each finished cell to the experiment logger
        self.lease_s = lease_s  # a claim not refreshed this long is stale (its process is gone)
        self.appended: list[dict] = []  # the rows this process wrote: what a run reports on
        self.claimed_elsewhere: list[dict] = []  # cells left to another live run

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
        """Whether the cell's latest row is ok (or any row, with include_failed), so a rerun skips it."""
        row = self.latest().get(cell_key(cell))
        if row is None:
            return False
        return row["status"] == STATUS_OK or include_failed

    def load(self, status: str | None = STATUS_OK):
        """Latest row per cell as a flat table (a pandas DataFrame): cell parameters, metrics, status
        and error."""
        return flat_table(r for r in self.latest().values() if status is None or r["status"] == status)

    # ---- writing -------------------------------------------------------------------------------
    def append(
        self,
        cell: Mapping[str, Any],
        status: str,
        metrics: Mapping | None = None,
        error: str | None = None,
        duration_s: float | None = None,
    ) -> dict:
        """Append one row for `cell` and return it; secrets in the cell are scrubbed, NaN is stored as null.

        The write is locked and fsynced, and a torn last line left by a killed writer is cut first, so
        concurrent runs can share one file. ResultStoreError for a status other than ok or failed.
        """
        cell = scrub(dict(cell))
        row = {
            "key": cell_key(cell),
            "cell": _clean(cell),
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
        self.appended.append(row)
        if self.on_append is not None:
            self.on_append(row)
        return row

    # ---- claims --------------------------------------------------------------------------------
    @property
    def claims_dir(self) -> Path:
        """Where the claims on cells live: hidden beside the store, so no reader takes them for results."""
        return self.path.parent / f".{self.path.name}.claims"  # hidden: never read as results

    def _claim_path(self, cell: Mapping[str, Any]) -> Path:
        return self.claims_dir / (hashlib.sha1(cell_key(scrub(dict(cell))).encode()).hexdigest() + ".claim")

    def _stale(self, path: Path) -> bool:
        try:
            owner = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
        except (OSError, json.JSONDecodeError):
            return True  # unreadable or gone: nobody holds it
        if owner.get("host") == socket.gethostname():
            return not _alive(int(owner.get("pid", -1)))
        return age > self.lease_s

    @contextlib.contextmanager
    def claim(self, cell: Mapping[str, Any]) -> Iterator[bool]:
        """Hold the cell while the block runs: yields False (and holds nothing) when a live process
        already holds it. The claim is refreshed in the background and removed on exit."""
        path = self._claim_path(cell)
        self.claims_dir.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        lock = os.open(self.claims_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists() and not self._stale(path):
                got = False
            else:
                path.write_text(json.dumps(me))
                got = True
        finally:
            os.close(lock)
        if not got:
            yield False
            return
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(self.lease_s / 4):
                with contextlib.suppress(OSError):
                    os.utime(path)

        beat = threading.Thread(target=refresh, daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            with contextlib.suppress(OSError, json.JSONDecodeError):
                if json.loads(path.read_text()).get("pid") == me["pid"]:
                    path.unlink()

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

    def run_cell(
        self, cell: Mapping[str, Any], fn: Callable[[], Mapping | None], skip_done: bool = True
    ) -> dict | None:
        """Run one cell and record it. A raising cell is stored as failed and the sweep goes on.

        Returns the stored row, or None when the cell was already finished, or is being computed by
        another live run (it is claimed), and was skipped.
        """
        if skip_done and self.done(cell):
            return None
        with self.claim(cell) as mine:
            if not mine:
                log.info("cell %s is being computed by another run: left to it", cell_key(cell))
                self.claimed_elsewhere.append(dict(cell))
                return None
            if skip_done and self.done(cell):  # finished by another run between the check and the claim
                return None
            start = time.perf_counter()
            try:
                metrics = fn() or {}
            except Exception as err:  # noqa: BLE001 - any cell failure (OOM included) is data
                summary = "".join(traceback.format_exception_only(type(err), err)).strip()
                return self.append(cell, STATUS_FAILED, error=summary, duration_s=time.perf_counter() - start)
            return self.append(cell, STATUS_OK, metrics=metrics, duration_s=time.perf_counter() - start)
