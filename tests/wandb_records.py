"""Read a wandb offline run back from its .wandb file, so tests check what wandb would upload."""

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path


def records(path: Path) -> list:
    """Parse a .wandb file (a LevelDB-style log of protobuf records) without network or services."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, buf, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk of a record
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


@dataclass
class OfflineRun:
    dir: Path
    run: object  # the RunRecord: group, name, config
    config: dict
    history: dict  # key -> last logged value (media: a dict of their descriptor's fields)
    exit_codes: list[int]


def read_offline_run(parent: Path, wait_s: float = 180.0) -> OfflineRun:
    """The one offline run under <parent>/wandb/, once its writer is done with it.

    `finish()` returns before wandb's service has flushed the run file (it can still be the bare
    7-byte header), so wait for the run's exit record, the last one the service writes."""
    (run_file,) = parent.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + wait_s
    while True:
        recs = records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    by_kind = lambda kind: [r for r in recs if r.WhichOneof("record_type") == kind]  # noqa: E731
    history: dict = {}
    for item in (i for r in by_kind("history") for i in r.history.item):
        path = [item.key] if item.key else list(item.nested_key)  # media arrive as nested fields
        node = history
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    run = by_kind("run")[0].run
    # init's config rides on the run record; later updates (and, on some paths, init's) come as config records
    updates = [*run.config.update, *(i for r in by_kind("config") for i in r.config.update)]
    config = {i.key: json.loads(i.value_json) for i in updates}
    return OfflineRun(run_file.parent, run, config, history, [r.exit.exit_code for r in by_kind("exit")])
