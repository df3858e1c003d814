"""k instances of one model on one device, each in its own process, started together on each batch.

The paper's replication finding: a small model at its best batch leaves the device under-used, and a
second instance beside it adds throughput. Instances are common.serving.replicas processes running the
shared `serve` work: they load the model once and then serve one static batch per measured round (a
cell per batch size). Each round meets the parent twice at the barrier, once when every instance starts
its batch and once when the last one finishes; the parent's monitor window spans the two, so its
energy is the device's (NVML counts every process on the GPU; RAPL the whole CPU package). Throughput
is over the span from the first instance's start to the last one's end (one clock in every process).

On a CPU the device's cores are split between the instances, so k = 1 gets every core and k = 2 half
each: "one device" is the set of cores. Utilisation there is the instances' CPU time over wall time x
cores, since the parent's own CPU time says nothing about them; on a GPU it is NVML's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from common.results import STATUS_FAILED, ResultStore, cell_key
from common.serving.metrics import latency_stats, median_over_repeats
from common.serving.replicas import ReplicaFailed, ReplicaGroup, ServeJob, core_sets, round_records, serve
from common.serving.workloads import Request

log = logging.getLogger(__name__)
TPUT = "output_throughput_tok_s"
BEST_COLUMNS = (
    TPUT,
    "e2e_ms_mean",
    "itl_ms_mean",
    "energy_per_output_token_j",
    "utilization_pct",
    "peak_memory_bytes_total",
)


@dataclass
class Group:
    """One replication setting: k instances of `model`, each on its own cores."""

    model: str
    replicas: int
    engine: str = "hf"
    engine_options: dict = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "fp32"
    cores: list[int] | None = None  # CPU cores to split; None: every core this process may use
    warmup: int = 1
    warmup_tokens: int | None = None
    repeats: int = 3
    timeout_s: float = 600.0  # a barrier wait longer than this means an instance hung or died

    def cell(self, workload: str, device: str, batch: int) -> dict:
        """The result-store key of one per-instance batch: every parameter that changes what is measured."""
        return {
            "model": self.model,
            "engine": self.engine,
            "engine_options": ",".join(f"{k}={v}" for k, v in sorted(self.engine_options.items())),
            "dtype": self.dtype,
            "device": device,
            "workload": workload,
            "replicas": self.replicas,
            "batch_per_instance": batch,
            "total_batch": self.replicas * batch,
            "cores_per_instance": len(core_sets(self.replicas, self.cores)[0]),
        }


def _cell_row(rounds: list[list[dict]], measurements: list, cores: int, instance: dict) -> dict:
    """Per round: every instance's batch pooled over the span from the first start to the last end;
    then the median over rounds. `instance`: the first instance's engine.describe()."""
    rows = []
    for reports, m in zip(rounds, measurements):
        batches = [b for r in reports for b in r["batches"]]
        tokens = [sum(n for _, _, n, _ in b["requests"]) for b in batches]
        out_tokens = sum(tokens)
        wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
        cpu_s = sum(r["cpu_s"] for r in reports)
        energy = m.total_energy_j
        gpu = m.backend == "nvml"
        rows.append(
            {
                "n_requests": sum(len(b["requests"]) for b in batches),
                "output_tokens": out_tokens,
                "wall_time_s": wall,
                "window_time_s": m.time_s,
                "output_throughput_tok_s": out_tokens / wall,
                "instance_throughput_tok_s_min": min(t / b["total_s"] for t, b in zip(tokens, batches)),
                **latency_stats((r, 0.0) for r in round_records(reports)),
                "energy_j": energy,
                "mean_power_w": m.total_mean_power_w,
                "energy_per_output_token_j": energy / out_tokens if energy is not None else None,
                "energy_source": m.to_dict()["energy_source"],
                "energy_missing_reason": m.energy_missing_reason,
                "monitor_backend": m.backend,
                "utilization_pct": m.to_dict()["utilization_pct"] if gpu else 100 * cpu_s / (wall * cores),
                "utilization_source": "NVML GPU utilisation"
                if gpu
                else "instances' CPU time / (wall time x cores)",
                "peak_memory_bytes_total": sum(b["peak"] or 0 for b in batches),
                "kv_cache_bytes_total": sum(b["kv"] for b in batches),
            }
        )
    out = median_over_repeats(rows)
    out["instance"] = instance  # the first instance's model, device and threads
    return out


def run_group(
    group: Group,
    batches: list[int],
    workload: str,
    device: str,
    requests: list[Request],
    store: ResultStore,
    monitor,
    progress=lambda: None,
) -> list[dict]:
    """Serve each per-instance batch with k instances, one stored row each; returns the group's rows
    (finished and failed, cell and metrics flattened).

    A failing batch (out of memory, a dead instance) is stored as failed, the instances are restarted
    and the remaining batches go on; finished batches are not served again.
    """
    cells = {b: group.cell(workload, device, b) for b in batches}
    todo = sorted(b for b, cell in cells.items() if not store.done(cell))
    while todo:
        done = _serve(group, todo, cells, requests, store, monitor, progress)
        todo = todo[done:]
    latest = store.latest()
    rows = [latest[cell_key(c)] for c in cells.values() if cell_key(c) in latest]
    return [{**r["cell"], **r["metrics"], "status": r["status"], "error": r["error"]} for r in rows]


def _serve(group, todo, cells, requests, store, monitor, progress) -> int:
    """Start the instances for the batches in `todo`; returns how many batches were stored."""
    jobs = [
        ServeJob(
            cells=[
                [
                    [
                        (i * b + j, list(r.prompt_ids), r.output_len)
                        for j, r in enumerate(requests[i * b : (i + 1) * b])
                    ]
                ]
                for b in todo
            ],
            warmup=group.warmup,
            warmup_tokens=group.warmup_tokens,
            repeats=group.repeats,
            windowed=True,
        )
        for i in range(group.replicas)
    ]
    engine = {
        "kind": group.engine,
        "model": group.model,
        "device": group.device,
        "dtype": group.dtype,
        **group.engine_options,
    }
    cores = sum(len(s) for s in core_sets(group.replicas, group.cores))
    stored = 0
    with ReplicaGroup(serve, jobs, engine, group.timeout_s, group.cores) as instances:
        for batch in todo:
            t0 = time.perf_counter()
            try:
                described = instances.ready()
                rounds, windows = [], []
                for rep in range(group.repeats):
                    reports, window = instances.round(monitor, f"k{group.replicas}/b{batch}/rep{rep}")
                    rounds.append(reports)
                    windows.append(window)
            except ReplicaFailed as err:
                log.warning("k=%d batch %d failed: %s", group.replicas, batch, err)
                store.append(cells[batch], STATUS_FAILED, error=str(err), duration_s=time.perf_counter() - t0)
                progress()
                return stored + 1
            row = _cell_row(rounds, windows, cores, described[0])
            store.append(cells[batch], "ok", row, duration_s=time.perf_counter() - t0)
            log.info(
                "k=%d x batch %d (%d requests): %.1f tok/s, e2e %.0f ms, utilisation %.0f%%, energy %s",
                group.replicas,
                batch,
                row["n_requests"],
                row["output_throughput_tok_s"],
                row["e2e_ms_mean"],
                row["utilization_pct"] or float("nan"),
                "n/a" if row["energy_j"] is None else f"{row['energy_j']:.1f} J",
            )
            stored += 1
            progress()
    return stored


def replication_summary(rows: list[dict], tolerance: float) -> dict:
    """Per k: the best per-instance batch and its throughput; gains over one instance at its best batch
    (read by the saturation rule) and at the same total batch."""
    from papers.slm_energy.pareto import saturation_point

    by_k: dict[int, list[dict]] = {}
    for r in rows:
        by_k.setdefault(int(r["replicas"]), []).append(r)
    out = {"per_k": {}, "gains": []}
    for k, rs in sorted(by_k.items()):
        rs = sorted(rs, key=lambda r: r["batch_per_instance"])
        star = saturation_point(
            [r["batch_per_instance"] for r in rs],
            [r["output_throughput_tok_s"] for r in rs],
            [r["e2e_ms_mean"] for r in rs],
            tolerance,
        )
        best = rs[star["index"]]
        out["per_k"][k] = {
            "best_batch_per_instance": best["batch_per_instance"],
            "total_batch": best["total_batch"],
            "saturated": star["saturated"],
            **{c: best.get(c) for c in BEST_COLUMNS},
        }
    base = out["per_k"].get(1)
    single = {r["total_batch"]: r for r in by_k.get(1, [])}
    for k, best in out["per_k"].items():
        if k == 1 or base is None:
            continue
        same = [
            (r["total_batch"], r[TPUT] / single[r["total_batch"]][TPUT])
            for r in by_k[k]
            if r["total_batch"] in single
        ]
        out["gains"].append(
            {
                "replicas": k,
                "throughput_gain_at_best": best["output_throughput_tok_s"] / base["output_throughput_tok_s"],
                "latency_ratio_at_best": best["e2e_ms_mean"] / base["e2e_ms_mean"],
                "utilization_gain_at_best": _ratio(best["utilization_pct"], base["utilization_pct"]),
                "energy_per_token_ratio_at_best": _ratio(
                    best["energy_per_output_token_j"], base["energy_per_output_token_j"]
                ),
                "throughput_gain_same_total_batch": {int(b): float(g) for b, g in same},
                "geomean_gain_same_total_batch": float(np.exp(np.mean(np.log([g for _, g in same]))))
                if same
                else None,
            }
        )
    return out


def _ratio(a, b):
    return a / b if a is not None and b else None
