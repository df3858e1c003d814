"""Online serving: vLLM's OpenAI-compatible server started and stopped by the harness, its /metrics
sampled at 1 Hz, and a streaming client that sends every request at t = 0 (the paper's rate inf).

Only the standard library is used (http.client, threads, subprocess), so the lifecycle, the sampler
and the Prometheus parsing run and are tested anywhere, against a fake server on loopback; only the
real server needs .venv-vllm. The server gets its own process group so stopping it also stops the
engine-core processes vLLM forks.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common.serving.engine import RequestRecord

log = logging.getLogger(__name__)

# gauge / counter names across vLLM versions (V0: gpu_cache_usage_perc; V1: kv_cache_usage_perc)
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
RUNNING, WAITING = ("vllm:num_requests_running",), ("vllm:num_requests_waiting",)
PREEMPTIONS = ("vllm:num_preemptions_total", "vllm:num_preemptions")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class ServerError(RuntimeError):
    """The server did not come up, or died; the message holds the end of its log."""


def _unescape(value: str) -> str:
    """Label values escape backslash, double quote and newline (the text format's only escapes)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) for every sample of a Prometheus text exposition; comments skipped."""
    samples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"/metrics line {lineno} is not a Prometheus sample: {line!r}")
        name, labels, value = match.groups()
        parsed = {k: _unescape(v) for k, v in _LABEL.findall(labels or "")}
        samples.append((name, parsed, float(value)))
    return samples


def metric_value(samples, names: Sequence[str]) -> float | None:
    """Sum over label sets of the first of `names` present (one engine: one label set)."""
    for name in names:
        values = [v for n, _, v in samples if n == name]
        if values:
            return float(sum(values))
    return None


def free_port() -> int:
    """A TCP port free on loopback now (another process may still take it before the server binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(host: str, port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def vllm_server_command(model: str, host: str, port: int, args: Sequence[str] = ()) -> list[str]:
    """The argv of vLLM's OpenAI-compatible server under this python; `args` are extra server flags."""
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--host",
        host,
        "--port",
        str(port),
        *args,
    ]


class Server:
    """A server subprocess on loopback: start() returns once GET /health answers 200.

    command: the argv to run, with "{port}" replaced by the chosen port (vllm_server_command builds
    vLLM's; tests pass a fake).
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: str | Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        ready_timeout_s: float = 900.0,
        health_path: str = "/health",
    ):
        self.host, self.port = host, port or free_port()
        self.command = [c.replace("{port}", str(self.port)) for c in command]
        self.log_path, self.ready_timeout_s, self.health_path = Path(log_path), ready_timeout_s, health_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's base URL, http://host:port."""
        return f"http://{self.host}:{self.port}"

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> Server:
        """Start the server and wait until GET health_path answers 200; returns self.

        Raises ServerError with the end of the log if it exits first, or (after stopping it) if it is not
        ready within ready_timeout_s.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(
                self.command, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"server exited with status {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self._log_tail()}"
                )
            try:
                if _get(self.host, self.port, self.health_path, timeout=2.0)[0] == 200:
                    log.info("server ready on %s (pid %d)", self.url, self.proc.pid)
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(
            f"server not ready after {self.ready_timeout_s:.0f} s; log {self.log_path}:\n{self._log_tail()}"
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        log.info("server on %s stopped", self.url)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class MetricsRow:
    """One /metrics sample; a field is None where the server exposes none of its gauge's names."""

    time_s: float  # since the sampler started
    kv_cache_usage: float | None  # fraction of the allocated KV blocks in use
    running: float | None
    waiting: float | None
    preemptions: float | None  # cumulative


class MetricsSampler:
    """Reads /metrics every 1/hz seconds in a thread (the paper's sidecar samples at 1 Hz)."""

    def __init__(self, host: str, port: int, hz: float = 1.0):
        self.host, self.port, self.period = host, port, 1.0 / hz
        self.rows: list[MetricsRow] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> MetricsRow:
        """One /metrics read now; OSError for an answer other than 200, ValueError for a malformed body."""
        status, text = _get(self.host, self.port, "/metrics")
        if status != 200:
            raise OSError(f"/metrics answered {status}")
        s = parse_prometheus(text)
        return MetricsRow(
            time.monotonic() - self._t0,
            metric_value(s, KV_USAGE),
            metric_value(s, RUNNING),
            metric_value(s, WAITING),
            metric_value(s, PREEMPTIONS),
        )

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            try:
                self.rows.append(self.sample())
            except (OSError, ValueError) as err:
                self.errors += 1
                log.debug("metrics sample failed: %s", err)
            due += self.period
            self._stop.wait(max(0.0, due - time.monotonic()))

    def start(self) -> MetricsSampler:
        """Sample in a daemon thread from now on; row times count from this call."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="vllm-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[MetricsRow]:
        """Stop sampling and return every row; failed samples are only counted, in `errors`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.period + 5)
        return self.rows

    def summary(self) -> dict:
        """The background sweep's columns: mean and max running batch, max KV use, preemptions."""

        def col(name):
            return [getattr(r, name) for r in self.rows if getattr(r, name) is not None]

        running, kv, pre = col("running"), col("kv_cache_usage"), col("preemptions")
        return {
            "mean_running_batch": sum(running) / len(running) if running else None,
            "max_running_batch": max(running) if running else None,
            "max_kv_cache_usage_pct": 100 * max(kv) if kv else None,
            "num_preemptions": max(pre) if pre else None,
            "metrics_samples": len(self.rows),
        }


def stream_completion(
    host: str,
    port: int,
    model: str,
    prompt_ids: Sequence[int],
    max_tokens: int,
    t_zero: float,
    index: int,
    timeout_s: float = 3600.0,
) -> RequestRecord:
    """One streamed /v1/completions request; a token time per streamed token since t_zero."""
    body = json.dumps(
        {
            "model": model,
            "prompt": list(prompt_ids),
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    times: list[float] = []
    usage_tokens = None
    try:
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise ServerError(f"request {index}: HTTP {resp.status}: {resp.read()[:500]!r}")
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            now = time.perf_counter() - t_zero
            if chunk.get("usage"):
                usage_tokens = chunk["usage"].get("completion_tokens")
            for choice in chunk.get("choices") or []:
                ids = choice.get("token_ids")
                times.extend([now] * (len(ids) if ids else 1))
    finally:
        conn.close()
    produced = usage_tokens if usage_tokens is not None else len(times)
    return RequestRecord(index, len(prompt_ids), produced, times)


def run_online(
    host: str,
    port: int,
    model: str,
    requests: Sequence[tuple[Sequence[int], int]],
    max_concurrency: int = 1024,
) -> tuple[list[RequestRecord], float]:
    """Send every request at once (rate inf); returns the records and the benchmark's duration."""
    t_zero = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(requests))) as pool:
        futures = [
            pool.submit(stream_completion, host, port, model, ids, n, t_zero, i)
            for i, (ids, n) in enumerate(requests)
        ]
        records = [f.result() for f in futures]
    return records, time.perf_counter() - t_zero
