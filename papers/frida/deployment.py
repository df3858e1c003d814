"""Flower's deployment runtime on one machine: a SuperLink, one SuperNode per client, `flwr run`.

Everything runs insecure on 127.0.0.1 with free ports and a private FLWR_HOME, so nothing touches
the user's Flower config. Every process started here, and every process those start (SuperExec,
flwr-serverapp, flwr-clientapp), is tracked by PID and stopped in `close()`, also after a failure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import tomli_w

from papers.frida.client_app import RUN_CONFIG_KEY
from papers.frida.config import FederationConfig, federation_to_json
from papers.frida.server_app import DONE_FILE, OUT_KEY, FederationResult, read_result

APP_DIR = Path(__file__).resolve().parent / "flower_app"
BIN = Path(sys.executable).parent
log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class LocalDeployment:
    """Use as a context manager; `run(fed)` returns the ServerApp's records."""

    def __init__(self, num_supernodes: int, workdir: str | Path | None = None):
        self.num_supernodes = num_supernodes
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="frida-deploy-"))
        self.home = self.workdir / "flwr_home"
        self.procs: list[subprocess.Popen] = []
        self.pids: set[int] = set()
        # the SuperLink starts `flower-superexec` (and that `flwr-serverapp`) by name: PATH must hold it
        self.env = {
            **os.environ,
            "FLWR_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logfile = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,
        )
        proc.logfile = logfile
        self.procs.append(proc)
        self.pids.add(proc.pid)
        return proc

    def start(self) -> LocalDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        # flwr 1.42 serves the Fleet, Control and Runtime APIs over HTTP on one port
        port = free_port()
        self._spawn(
            "superlink",
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--disable-runtime-dependency-installation",
            ],
        )
        wait_for_port(port, 60)
        for pid in range(self.num_supernodes):
            self._spawn(
                f"supernode{pid}",
                [
                    str(BIN / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    f"partition-id={pid} num-partitions={self.num_supernodes}",
                ],
            )
        (self.home / "config.toml").write_text(
            tomli_w.dumps(
                {
                    "superlink": {
                        "default": "frida",
                        "frida": {"address": f"127.0.0.1:{port}", "insecure": True},
                    }
                }
            )
        )
        return self

    def _track_children(self) -> None:
        for pid in list(self.pids):
            try:
                self.pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except psutil.NoSuchProcess:
                continue

    def submit(self, fed: FederationConfig) -> Path:
        """Start the run (`flwr run`) and return the directory its records appear in, round by round."""
        out = self.workdir / "out"
        run_config = self.workdir / "run_config.toml"
        run_config.write_text(tomli_w.dumps({RUN_CONFIG_KEY: federation_to_json(fed), OUT_KEY: str(out)}))
        proc = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                str(APP_DIR),
                "frida",
                "--run-config",
                str(run_config),
                "--format",
                "json",
            ],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"flwr run failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
        log.info("flwr run: %s", proc.stdout.strip())
        return out

    def wait(self, out: Path, timeout: float = 300) -> FederationResult:
        """Wait for the ServerApp to mark the run finished; its records."""
        deadline = time.monotonic() + timeout
        while not (out / DONE_FILE).exists():
            self._track_children()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the run did not finish in {timeout:.0f} s; logs in {self.workdir}")
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"the SuperLink exited ({self.procs[0].returncode}); see {self.workdir}")
            time.sleep(0.5)
        return read_result(out)

    def run(self, fed: FederationConfig, timeout: float = 300) -> FederationResult:
        return self.wait(self.submit(fed), timeout)

    def kill_supernode(self, index: int) -> None:
        """SIGKILL one SuperNode and what it started (a node dying mid-run, for tests)."""
        proc = self.procs[1 + index]
        family = [proc.pid]
        try:
            family += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        for pid in family:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                continue
        proc.wait(timeout=10)

    def close(self) -> None:
        """Stop every process we started and their descendants, by PID: TERM, then KILL."""
        self._track_children()
        alive = []
        for pid in self.pids:
            try:
                proc = psutil.Process(pid)
                proc.terminate()
                alive.append(proc)
            except psutil.NoSuchProcess:
                continue
        _, still = psutil.wait_procs(alive, timeout=5)
        for proc in still:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(still, timeout=5)
        for proc in self.procs:
            proc.logfile.close()
            if proc.returncode is None:
                proc.wait(timeout=5)

    def __enter__(self) -> LocalDeployment:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def run_in_deployment(
    fed: FederationConfig, workdir: str | Path | None = None, timeout: float = 300
) -> FederationResult:
    with LocalDeployment(fed.num_clients, workdir) as deployment:
        result = deployment.run(fed, timeout)
    log.info("deployment runtime finished: %s", json.dumps({"rounds": len(result.rounds)}))
    return result
