"""Replication (the paper's use of the memory the BCA frees): N replicas of one engine on one device.

    python -m papers.batching.replicate                          # 2 hf replicas on this CPU's 2 cores
    python -m papers.batching.replicate scale=paper engine=vllm   # N vLLM servers on one GPU (mps=true: MPS)

One request stream (all requests arrive at t = 0, as the paper's rate-inf client) is split round-robin
between N replicas, each with its share of the device's memory (memory_fraction / N) and its own batch
cap; the baseline is one replica with all of the device at its largest batch, serving the same stream.
Aggregate throughput is every token over the time from the first replica's start to the last one's end;
TTFT, ITL and end-to-end latency pool every request, counted from t = 0 (queueing included).

- engine=hf: each replica is a process (common.serving.replicas: spawned, pinned to its own share of the
  cores, one torch thread per core) serving its requests as static batches of its cap (the `serve` work
  slm_energy's replication uses too); a barrier starts the replicas together on every repeat. On a CPU
  "the device" is this process's cores, memory shares are measured (peak resident memory) rather than
  enforced; on a GPU each process is capped with torch.cuda.set_per_process_memory_fraction.
- engine=vllm: N OpenAI servers of vLLM (common.serving.vllm_server) on loopback, started one after the
  other (each sizes its KV pool from the memory free at start-up) with gpu_memory_utilization = share and
  max_num_seqs = cap, optionally under NVIDIA MPS; the same client streams every request at t = 0.

One result row per setting (N, cap) in <result_dir>/results.jsonl; summary.json compares each with the
baseline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput
from common.results import STATUS_FAILED, STATUS_OK, cell_key
from common.serving import config as serving
from common.serving.metrics import median_over_repeats, summarise_online
from common.serving.models import ARCHS, ModelUnavailable, device_type, get_config
from common.serving.replicas import ReplicaGroup, ServeJob, core_sets, round_records, serve
from common.serving.workloads import Request, sweep_requests

log = logging.getLogger(__name__)
PAIRED = ("output_throughput_tok_s", "itl_ms_mean", "e2e_ms_mean", "load_avg_1m")
COMPARED = (
    "output_throughput_tok_s",
    "total_throughput_tok_s",
    "itl_ms_mean",
    "tpot_ms_mean",
    "ttft_ms_mean",
    "e2e_ms_mean",
    "e2e_ms_p99",
)
VLLM_DTYPE = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}
MAX_CLIENT_THREADS = 1024  # the streaming client's concurrency cap (as common.serving.vllm_server.run_online)


@dataclass(frozen=True)
class Setting:
    replicas: int
    cap: int  # each replica's batch cap (max_num_seqs)
    share: float  # each replica's fraction of the device memory

    @property
    def name(self) -> str:
        return f"{self.replicas}x{self.cap}"


def settings_from(cfg) -> list[Setting]:
    """The baseline (one replica, all the memory, its largest batch) first, then every N x cap."""
    base = Setting(1, int(cfg.baseline_batch), float(cfg.memory_fraction))
    rest = [
        Setting(int(n), int(c), float(cfg.memory_fraction) / int(n))
        for n in cfg.replicas
        for c in cfg.replica_batches
    ]
    return [base] + [s for s in dict.fromkeys(rest) if s != base]


def split_stream(stream: list[Request], n: int) -> list[list[tuple[int, Request]]]:
    """Round-robin: request i goes to replica i mod n (the order a load balancer sees them at t = 0)."""
    return [[(i, r) for i, r in enumerate(stream) if i % n == k] for k in range(n)]


def aggregate(reps: dict[int, dict]) -> dict:
    """One repeat of N replicas: every request on one clock whose zero is the first replica's start."""
    t0 = min(r["start"] for r in reps.values())
    end = max(r["end"] for r in reps.values())
    per_replica = [
        sum(n for b in r["batches"] for _, _, n, _ in b["requests"]) / (r["end"] - r["start"])
        for r in reps.values()
    ]
    peaks = [b["peak"] for r in reps.values() for b in r["batches"] if b["peak"] is not None]
    starts = [r["start"] for r in reps.values()]
    return {
        **summarise_online(round_records(list(reps.values()), t0), end - t0),
        "replica_throughput_min_tok_s": min(per_replica),
        "replica_throughput_max_tok_s": max(per_replica),
        "start_skew_ms": 1e3 * (max(starts) - min(starts)),
        "peak_memory_bytes_max": max(peaks) if peaks else None,
        "kv_cache_bytes_total": sum(max(b["kv"] for b in r["batches"]) for r in reps.values()),
    }


def start_replicas(setting: Setting, stream: list[Request], cfg, cores: list[int]) -> ReplicaGroup:
    """N replica processes of one setting, request i going to replica i mod N, each serving its share as
    static batches of its cap. The parent decides when each repeat starts, so groups of several settings
    can stay loaded side by side and take turns."""
    jobs = []
    for mine in split_stream(stream, setting.replicas):
        requests = [(g, list(r.prompt_ids), r.output_len) for g, r in mine]
        batches = [requests[i : i + setting.cap] for i in range(0, len(requests), setting.cap)]
        jobs.append(
            ServeJob(
                cells=[batches],
                warmup=cfg.warmup,
                warmup_tokens=cfg.warmup_tokens,
                repeats=cfg.repeats,
                memory_share=setting.share,
            )
        )
    engine = {"kind": "hf", "model": cfg.model, "device": cfg.device, "dtype": cfg.dtype}
    return ReplicaGroup(serve, jobs, engine, cfg.timeout_s, cores)


def serve_once(group: ReplicaGroup) -> dict:
    """Release one repeat and aggregate what the replicas report."""
    reports, _ = group.round()
    # CPU timings depend on what else runs on the shared cores: the 1-minute load after the round
    return {**aggregate(dict(enumerate(reports))), "load_avg_1m": os.getloadavg()[0]}


def serve_processes(
    settings: list[Setting],
    stream: list[Request],
    cfg,
    cores: list[int],
    interleave: bool,
    progress=lambda text: None,
) -> dict[Setting, tuple[list[dict], dict] | Exception]:
    """Every setting's repeats (aggregated rows) and first replica's description, or its error.

    interleave: load every setting's replicas at once and run repeat r of each setting before repeat
    r + 1 of any, so a change of load on shared cores falls on all settings alike (CPU); otherwise one
    setting at a time (GPU: each group holds its share of the device's memory).
    """
    out: dict = {}
    batches = [settings] if interleave else [[s] for s in settings]
    for batch in batches:
        reps, described = defaultdict(list), {}
        with contextlib.ExitStack() as stack:
            groups = {s: stack.enter_context(start_replicas(s, stream, cfg, cores)) for s in batch}
            for s, g in groups.items():
                try:
                    described[s] = g.ready()[0]  # once every replica has loaded and warmed up
                except Exception as err:  # noqa: BLE001 - a dead or hung replica fails its setting only
                    out[s] = err
                progress(f"{s.name} loaded")
            for rep in range(cfg.repeats):
                for s, g in groups.items():
                    if s not in out:
                        try:
                            reps[s].append(serve_once(g))
                        except Exception as err:  # noqa: BLE001 - as above
                            out[s] = err
                    progress(f"{s.name} repeat {rep + 1}/{cfg.repeats}")
        for s in batch:
            out.setdefault(s, (reps[s], described.get(s)))
    return out


# ---- vllm: one OpenAI server per replica (GPU nodes) ------------------------------------------------------
@contextlib.contextmanager
def mps_daemon(enabled: bool, run_dir: Path):
    """NVIDIA MPS control daemon around the servers, with its pipe and log folders in the run dir."""
    if not enabled:
        yield
        return
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise BadInput("mps: nvidia-cuda-mps-control is not on PATH on this node")
    dirs = {"CUDA_MPS_PIPE_DIRECTORY": run_dir / "mps_pipe", "CUDA_MPS_LOG_DIRECTORY": run_dir / "mps_log"}
    saved = {k: os.environ.get(k) for k in dirs}
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(path)  # the servers inherit it and connect to this daemon
    subprocess.run([control, "-d"], check=True, timeout=60)
    log.info("NVIDIA MPS daemon started (pipes in %s)", dirs["CUDA_MPS_PIPE_DIRECTORY"])
    try:
        yield
    finally:
        subprocess.run([control], input="quit\n", text=True, timeout=60, check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def serve_vllm(
    setting: Setting, stream: list[Request], cfg, run_dir: Path, device_name: str
) -> tuple[list[dict], dict]:
    """N vLLM servers, one stream: request i goes to server i mod N, every request sent at t = 0."""
    from common.serving.vllm_engine import model_dir_for
    from common.serving.vllm_server import MetricsSampler, Server, free_port, vllm_server_command

    longest = max(r.prompt_len + r.output_len for r in stream)
    with tempfile.TemporaryDirectory(prefix="vllm_model_") as tmp, mps_daemon(cfg.mps, run_dir):
        model = model_dir_for(cfg.model, tmp)
        args = [
            "--dtype",
            VLLM_DTYPE[cfg.dtype],
            "--max-num-seqs",
            str(setting.cap),
            "--gpu-memory-utilization",
            f"{setting.share:.4f}",
            "--max-model-len",
            str(longest),
            "--seed",
            str(cfg.seed),
        ]
        if cfg.model in ARCHS:  # random weights, no tokenizer: token-id prompts only
            args += ["--load-format", "dummy", "--skip-tokenizer-init"]
        servers = []
        try:
            for k in range(setting.replicas):  # one at a time: each sizes its KV pool from the free memory
                port = free_port()
                servers.append(
                    Server(
                        vllm_server_command(model, "127.0.0.1", port, [*args, *cfg.vllm_args]),
                        run_dir / f"server_{setting.name}_{k}.log",
                        port=port,
                        ready_timeout_s=cfg.timeout_s,
                    ).start()
                )
            warm = [
                (r, s) for k, s in enumerate(servers) for r in stream[k :: setting.replicas][: setting.cap]
            ]
            for _ in range(cfg.warmup):  # one full batch through each server, untimed
                _client(model, warm, cfg.warmup_tokens)
            rows = []
            for _ in range(cfg.repeats):
                samplers = [MetricsSampler(s.host, s.port).start() for s in servers]
                routed = [(r, servers[i % setting.replicas]) for i, r in enumerate(stream)]
                records, duration = _client(model, routed, None)
                for smp in samplers:
                    smp.stop()
                gauges = [smp.summary() for smp in samplers]
                rows.append(
                    {
                        **summarise_online(records, duration),
                        "mean_running_batch_per_replica": _mean(g["mean_running_batch"] for g in gauges),
                        "max_kv_cache_usage_pct": _max(g["max_kv_cache_usage_pct"] for g in gauges),
                        # vLLM's counter runs from each server's start (warm-up and earlier rounds)
                        "num_preemptions_cumulative": sum(g["num_preemptions"] or 0 for g in gauges),
                        "load_avg_1m": os.getloadavg()[0],
                    }
                )
        finally:
            for s in servers:
                s.stop()
    return rows, {
        "engine": "vllm",
        "device_name": device_name,
        "model": cfg.model,
        "gpu_memory_utilization": setting.share,
        "max_num_seqs": setting.cap,
        "mps": cfg.mps,
    }


def _client(model: str, routed, tokens: int | None):
    """Send every (request, server) pair at once; records on one clock and the run's duration."""
    from common.serving.vllm_server import stream_completion

    t_zero = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(MAX_CLIENT_THREADS, len(routed))) as pool:
        futures = [
            pool.submit(
                stream_completion, s.host, s.port, model, r.prompt_ids, tokens or r.output_len, t_zero, i
            )
            for i, (r, s) in enumerate(routed)
        ]
        records = [f.result() for f in futures]
    return records, time.perf_counter() - t_zero


def _mean(values):
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def _max(values):
    v = [x for x in values if x is not None]
    return max(v) if v else None


# ---- the experiment -------------------------------------------------------------------------------------
def compare(rows: list[dict], baseline: Setting) -> list[dict]:
    """Each setting's aggregate metrics over the baseline's."""
    by_name = {r["setting"]: r for r in rows}
    base = by_name.get(baseline.name)
    if base is None:
        return []
    out = []
    for r in rows:
        if r["setting"] == baseline.name:
            continue
        paired = _paired(r.get("per_repeat"), base.get("per_repeat"), PAIRED[0])
        out.append(
            {
                "setting": r["setting"],
                "replicas": r["replicas"],
                "batch_cap": r["batch_cap"],
                **{f"{k}_ratio": (r[k] / base[k] if r.get(k) and base.get(k) else None) for k in COMPARED},
                "throughput_ratio_per_repeat": paired,
                "throughput_ratio_range": [min(paired), max(paired)] if paired else None,
            }
        )
    return out


def _paired(mine: dict | None, base: dict | None, key: str) -> list[float] | None:
    """Ratio in each repeat round: on a CPU the rounds are interleaved, so round r of every setting ran
    under about the same load of the shared cores as the baseline's round r."""
    if not mine or not base or len(mine[key]) != len(base[key]):
        return None
    return [a / b for a, b in zip(mine[key], base[key])]


@entrypoint("batching/replicate")
def main(cfg, run):
    from rich.progress import Progress

    from common.hardware import device_memory

    cores = sorted(os.sched_getaffinity(0))  # the schema's check made sure hf replicas get a core each
    device = "cuda" if cfg.engine == "vllm" else device_type(cfg.device)
    settings = settings_from(cfg)
    workload = serving.workload_spec(cfg.workload)
    try:
        vocab = get_config(cfg.model).vocab_size
    except ModelUnavailable as err:
        raise BadInput(f"model: {err}") from None
    stream = sweep_requests(
        run.result_dir / f"requests_{workload.label}_v{vocab}.json", workload, cfg.num_requests, vocab
    )
    memory = device_memory(device)
    memory, memory_name = memory.total_bytes, memory.name
    hardware = run.info["hardware"]["device"] if device == "cpu" else memory_name
    log.info(
        "replication of %s (%s engine) on %s: baseline 1x%d, then %s; %d requests (%s); cores %s, "
        "load average %.1f",
        cfg.model,
        cfg.engine,
        hardware,
        cfg.baseline_batch,
        [s.name for s in settings[1:]],
        len(stream),
        workload.label,
        cores,
        os.getloadavg()[0],
    )

    def cell(s: Setting) -> dict:
        per_core = len(core_sets(s.replicas, cores)[0]) if cfg.engine == "hf" else None
        return {
            "model": cfg.model,
            "engine": cfg.engine,
            "dtype": cfg.dtype,
            "device": device,
            "workload": workload.label,
            "num_requests": len(stream),
            "replicas": s.replicas,
            "batch_cap": s.cap,
            "memory_share": round(s.share, 6),
            "cores_per_replica": per_core,
            "mps": bool(cfg.mps),
        }

    def metrics(s: Setting, reps: list[dict], described: dict) -> dict:
        out = median_over_repeats(reps)
        peak = out.get("peak_memory_bytes_max")
        return {
            **out,
            "per_repeat": {k: [r[k] for r in reps] for k in PAIRED},
            "replica": described,
            "device_name": described["device_name"],
            "memory_share_bytes": s.share * memory,
            "memory_share_of": memory_name,
            "within_memory_share": None if peak is None else bool(peak <= s.share * memory),
        }

    todo = [s for s in settings if not run.results.done(cell(s))]
    with Progress(disable=not cfg.progress) as bar:
        task = bar.add_task("replication", total=len(todo) * (1 + cfg.repeats))

        def step(text: str) -> None:
            bar.update(task, description=f"replication {text}", advance=1)

        if cfg.engine == "hf":
            outcomes = serve_processes(todo, stream, cfg, cores, interleave=device == "cpu", progress=step)
        else:
            outcomes = {}
            for s in todo:
                try:
                    outcomes[s] = serve_vllm(s, stream, cfg, run.dir, memory_name)
                except Exception as err:  # noqa: BLE001 - a server that dies fails its setting only
                    outcomes[s] = err
                bar.advance(task, 1 + cfg.repeats)
    for s in todo:
        outcome = outcomes[s]
        if isinstance(outcome, Exception):
            log.warning("%s failed: %s", s.name, outcome)
            run.results.append(cell(s), STATUS_FAILED, error=f"{type(outcome).__name__}: {outcome}")
            continue
        m = metrics(s, *outcome)
        run.results.append(cell(s), STATUS_OK, m)
        log.info(
            "%s: %.1f output tok/s, ITL %.1f ms, e2e %.0f ms (on %s)",
            s.name,
            m["output_throughput_tok_s"],
            m["itl_ms_mean"],
            m["e2e_ms_mean"],
            m["device_name"],
        )
    latest = run.results.latest()
    rows = []
    for s in settings:
        r = latest.get(cell_key(cell(s)))
        if r is not None and r["status"] == "ok":
            rows.append({"setting": s.name, **r["cell"], **r["metrics"]})
    summary = {
        "hardware": hardware,
        "engine": cfg.engine,
        "model": cfg.model,
        "workload": workload.label,
        "num_requests": len(stream),
        "cores": cores,
        "baseline": settings[0].name,
        "settings": [s.name for s in settings],
        "failed": len(settings) - len(rows),
        "comparison": compare(rows, settings[0]),
        "rows": [
            {
                k: r.get(k)
                for k in (
                    "setting",
                    "replicas",
                    "batch_cap",
                    "memory_share",
                    "cores_per_replica",
                    "device_name",
                    *COMPARED,
                    "peak_memory_bytes_max",
                    "within_memory_share",
                    "start_skew_ms",
                    "load_avg_1m",
                )
            }
            for r in rows
        ],
    }
    write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    for c in summary["comparison"]:
        spread = c["throughput_ratio_range"] or [float("nan")] * 2
        log.info(
            "%s vs 1x%d: throughput x%.2f (x%.2f to x%.2f over the repeat rounds), ITL x%.2f, e2e x%.2f",
            c["setting"],
            cfg.baseline_batch,
            c["output_throughput_tok_s_ratio"] or float("nan"),
            *spread,
            c["itl_ms_mean_ratio"] or float("nan"),
            c["e2e_ms_mean_ratio"] or float("nan"),
        )
    run.logger.table("replication", rows)
    return summary


if __name__ == "__main__":
    main()
