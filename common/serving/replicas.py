"""N replicas of one engine on one device: a process each, pinned to its own cores, started together.

Replicas are processes, not threads, so each holds its own engine and device context, and they are
spawned, not forked, so no torch, OpenMP or CUDA state is copied into them. On a CPU the device is the
set of cores: each replica is pinned to an equal share (sched_setaffinity) with one torch thread per
core, so one replica gets every core and two get half each. On a GPU they share it (and still split the
host's cores, for the Python side of each).

The parent is the last party of a barrier the replicas share, so it decides when each round starts
and can open a measurement window between two meetings. Replicas report through one queue. A replica
that raises reports its error and breaks the barrier; one that dies without a word (killed for memory,
a crash in native code) is seen by a watchdog thread that breaks the barrier too; so the parent hears
of a failure at once instead of waiting out the timeout, and nothing hangs.

    with ReplicaGroup(work, jobs, engine={"kind": "hf", "model": "opt-tiny"}, timeout_s=60) as group:
        group.wait()              # release a round: each replica's work passes its replica.wait()
        results = group.collect() # one report from every replica, in replica order

`work(replica, engine, job)` runs in replica i with jobs[i]; it must be a module-level function (the
spawned process imports it by name) and calls `replica.wait()` and `replica.report(...)` in the order
the parent expects.

Both serving papers replicate with the same work, `serve`: each replica serves its `ServeJob` (per
cell, static batches of its share of the requests) and reports every round on one clock, which the
parent drives with `ready()` and `round()`; `round_records` puts a round's requests on that clock.
The papers differ only in how they split the requests and what they compute from a round.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.serving.engine import RequestRecord


class ReplicaFailed(RuntimeError):
    """A replica raised, died or went silent; the message says which and why."""


def core_sets(n: int, cores: list[int] | None = None) -> list[list[int]]:
    """n contiguous, equal-as-possible shares of `cores` (default: every core this process may use)."""
    cores = sorted(cores if cores is not None else os.sched_getaffinity(0))
    if not 1 <= n <= len(cores):
        raise ValueError(f"{n} replicas on {len(cores)} cores: at least one core each")
    return [cores[k * len(cores) // n : (k + 1) * len(cores) // n] for k in range(n)]


@dataclass
class Replica:
    """A replica's end of the group, as its work function sees it."""

    index: int
    cores: list[int]
    barrier: Any  # multiprocessing Barrier shared with the other replicas and the parent
    queue: Any  # multiprocessing Queue to the parent
    timeout_s: float

    def wait(self) -> None:
        """Meet every other replica and the parent (a round starts or ends here)."""
        self.barrier.wait(self.timeout_s)

    def report(self, payload) -> None:
        """Send a picklable result to the parent's `collect`."""
        self.queue.put((self.index, None, payload))


def _replica_main(replica: Replica, engine: dict, work: Callable, job) -> None:
    """The spawned process: pin, load the engine, run the work; any failure goes to the parent."""
    try:
        os.sched_setaffinity(0, replica.cores)
        import torch

        from common.serving.engine import make_engine

        torch.set_num_threads(len(replica.cores))
        loaded = make_engine(**engine)
        try:
            work(replica, loaded, job)
        finally:
            loaded.close()
    except threading.BrokenBarrierError:
        return  # another replica failed (it told the parent why) or the parent gave up waiting
    except BaseException as err:  # noqa: BLE001 - whatever it is, the parent must hear of it
        where = f"replica {replica.index} on cores {replica.cores}: {err!r}"
        replica.queue.put((replica.index, f"{where}\n{traceback.format_exc(limit=4).strip()}", None))
        replica.barrier.abort()


@dataclass
class ServeJob:
    """What one replica serves with `serve`: per cell, its static batches, served one after the other in
    each round; a request is (id, prompt token ids, new tokens)."""

    cells: list[list[list[tuple[int, list[int], int]]]]
    warmup: int = 1  # untimed runs of each cell's first batch before its rounds
    warmup_tokens: int | None = None  # new tokens per warm-up run; None: the requests' own
    repeats: int = 3  # rounds per cell
    memory_share: float | None = None  # on a GPU, this process's cap as a share of the device memory
    windowed: bool = False  # meet the parent again when a round ends (it closes a measurement window)


def serve(replica: Replica, engine, job: ServeJob) -> None:
    """The replica work of both serving papers. Per cell: warm up on its first batch and report
    engine.describe() (the parent's `ready`); then per round: start with the other replicas at the
    barrier, serve every batch of the cell and report the round (the parent's `round`).

    A round's report: start, end (perf_counter: CLOCK_MONOTONIC, one clock for every process), the
    process's CPU seconds, and per batch its start, wall time, peak and KV memory and its requests as
    (id, prompt length, output length, token times from the batch's start)."""
    if (
        job.memory_share is not None
        and getattr(engine, "device", None) is not None
        and engine.device.type == "cuda"
    ):
        import torch

        torch.cuda.set_per_process_memory_fraction(job.memory_share, engine.device)
    for batches in job.cells:
        first = batches[0]
        for _ in range(job.warmup):
            engine.run([p for _, p, _ in first], job.warmup_tokens or [n for _, _, n in first])
        replica.report(engine.describe())
        for _ in range(job.repeats):
            replica.wait()
            cpu0, start = time.process_time(), time.perf_counter()
            served = []
            for batch in batches:
                t = time.perf_counter()
                res = engine.run([p for _, p, _ in batch], [n for _, _, n in batch])
                served.append(
                    {
                        "t": t,
                        "total_s": res.total_time_s,
                        "peak": res.peak_memory_bytes,
                        "kv": res.kv_cache_bytes,
                        "requests": [
                            (g, r.prompt_len, r.output_len, r.token_times_s)
                            for (g, _, _), r in zip(batch, res.requests)
                        ],
                    }
                )
            replica.report(
                {
                    "start": start,
                    "end": time.perf_counter(),
                    "cpu_s": time.process_time() - cpu0,
                    "batches": served,
                }
            )
            if job.windowed:
                replica.wait()


def round_records(reports: list[dict], t0: float | None = None) -> list[RequestRecord]:
    """Every request of one round of `serve` reports. t0 None: token times from the request's own batch
    start; else on the shared clock from t0 (a batch's wait behind earlier batches included)."""
    out = []
    for report in reports:
        for b in report["batches"]:
            shift = 0.0 if t0 is None else b["t"] - t0
            out += [
                RequestRecord(g, prompt, n, [shift + t for t in times])
                for g, prompt, n, times in b["requests"]
            ]
    return out


class ReplicaGroup:
    """len(jobs) replica processes of one engine, running `work` with their job each."""

    def __init__(
        self, work: Callable, jobs: list, engine: dict, timeout_s: float, cores: list[int] | None = None
    ):
        """engine: make_engine's arguments (kind, model, device, dtype, options); timeout_s: a replica
        silent (or a barrier unmet) for longer has hung; cores: split between the replicas (default:
        every core this process may use)."""
        ctx = mp.get_context("spawn")
        self.timeout_s = timeout_s
        self.windowed = bool(jobs) and all(getattr(j, "windowed", False) for j in jobs)
        self.barrier, self.queue = ctx.Barrier(len(jobs) + 1), ctx.Queue()
        replicas = [
            Replica(i, part, self.barrier, self.queue, timeout_s)
            for i, part in enumerate(core_sets(len(jobs), cores))
        ]
        self.procs = [
            ctx.Process(target=_replica_main, args=(r, engine, work, job), daemon=True)
            for r, job in zip(replicas, jobs)
        ]
        for p in self.procs:
            p.start()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def wait(self) -> None:
        """Meet the replicas at the barrier; ReplicaFailed (with the first reason) if it broke."""
        try:
            self.barrier.wait(self.timeout_s)
        except threading.BrokenBarrierError:
            raise ReplicaFailed(self._why()) from None

    def collect(self) -> list:
        """One report from every replica, in replica order; ReplicaFailed as soon as one fails."""
        got: dict[int, Any] = {}
        deadline = time.monotonic() + self.timeout_s
        while len(got) < len(self.procs):
            try:
                index, error, payload = self.queue.get(timeout=0.5)
            except queue_mod.Empty:
                dead = self._dead()
                if dead:
                    raise ReplicaFailed(dead) from None
                if time.monotonic() > deadline:
                    silent = [i for i in range(len(self.procs)) if i not in got]
                    raise ReplicaFailed(
                        f"no report from replica(s) {silent} within timeout_s = "
                        f"{self.timeout_s:g} s (hung or too slow)"
                    ) from None
                continue
            if error is not None:
                raise ReplicaFailed(error)
            got[index] = payload
            deadline = time.monotonic() + self.timeout_s  # silent for timeout_s, not slow over all
        return [got[i] for i in range(len(self.procs))]

    def ready(self) -> list:
        """With `serve`: every replica's engine.describe() once it has warmed up for its next cell."""
        return self.collect()

    def round(self, monitor=None, tag: str = "round") -> tuple[list[dict], Any]:
        """With `serve`: release one round and collect its reports, in replica order. With a monitor (and
        windowed jobs), a window named `tag` spans the round from the moment every replica starts until
        the last one ends: its energy is the device's, whichever process spent it."""
        if monitor is not None and not self.windowed:
            raise ValueError("a measured round needs windowed jobs (ServeJob(windowed=True))")
        self.wait()
        if monitor is None:
            return self.collect(), None
        monitor.begin_window(tag)
        try:
            self.wait()
        finally:
            measurement = monitor.end_window(tag)
        return self.collect(), measurement

    def close(self) -> None:
        """Release replicas still waiting, let them exit, and stop the ones that do not."""
        self._stop.set()
        self.barrier.abort()  # harmless once they are done
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join()
        self._watchdog.join()

    def __enter__(self) -> ReplicaGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _dead(self) -> str:
        return "; ".join(
            f"replica {i} exited with code {p.exitcode}"
            for i, p in enumerate(self.procs)
            if p.exitcode not in (None, 0)
        )

    def _why(self) -> str:
        """Why the barrier broke: a replica's own report, else its exit code, else a timeout. Reports of
        replicas that did finish are dropped: the round is lost anyway."""
        deadline = time.monotonic() + 5  # a replica's report may still be on its way through the pipe
        while time.monotonic() < deadline:
            try:
                _, error, _ = self.queue.get(timeout=0.5)
            except queue_mod.Empty:
                if self._dead():
                    return self._dead()
                continue
            if error is not None:
                return error
        return self._dead() or "a replica did not reach the barrier within timeout_s (hung or too slow)"

    def _watch(self) -> None:
        """Break the barrier as soon as a replica dies, so the parent does not wait out the timeout."""
        from multiprocessing.connection import wait

        alive = list(self.procs)
        while alive and not self._stop.is_set():
            for sentinel in wait([p.sentinel for p in alive], timeout=0.5):
                proc = next(p for p in alive if p.sentinel == sentinel)
                alive.remove(proc)
                if proc.exitcode != 0:
                    self.barrier.abort()
