"""Typed schemas of the SLM serving experiments; importing this module registers them with hydra.

Values live in conf/slm_energy/<experiment>.yaml, with the paper's value beside each; the schemas fix
names, types and rules, so a misspelt key or a wrong value fails before anything runs, naming the key.
The serving keys (engine, device, dtype, workload, ...) are those of every serving command
(common.serving.config); the analysis keys (tolerance, latency_metric, roofline) those of
papers.slm_energy.analysis. The GPU check's schema lives with its hydra-free command (gpu_bench.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from common.config import register_schema
from common.errors import BadInput
from common.report import ReportConfig
from common.schema import FiguresConfig, spec
from common.serving.config import MonitoredServingConfig, ServingSweepConfig, WorkloadConfig
from papers.slm_energy.analysis import AnalysisConfig, check_analysis
from papers.slm_energy.gpu_bench import GpuBenchConfig

PAPER = "slm_energy"


@dataclass
class BenchmarkConfig(ServingSweepConfig, AnalysisConfig):
    """Models x batch sizes x workloads through the serving harness, then each model's Pareto point."""

    max_batch: dict[str, int] = spec(factory=dict, free="model -> its largest batch (checked)")
    workloads: list[WorkloadConfig] = spec(nonempty=True)  # one sweep per length pair

    def check(self) -> None:
        super().check()
        check_analysis(self)
        # caps of models not in this run are ignored: hydra merges dicts, so scale=paper cannot drop a key
        caps = {m: cap for m, cap in self.max_batch.items() if m in self.models}
        if any(not [b for b in self.batch_sizes if b <= cap] for cap in caps.values()):
            raise BadInput(f"max_batch: {caps} leaves a model without any of batch_sizes {self.batch_sizes}")


@dataclass
class ReplicationConfig(MonitoredServingConfig):
    """k instances of one model on one device against one instance at its best batch."""

    model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    replicas: list[int] = spec(nonempty=True, ge=1)  # instance counts; 1 (the baseline) among them
    total_batches: list[int] = spec(nonempty=True, ge=1)  # over all instances: each of k serves total / k
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    tolerance: float = spec(ge=0)  # the single instance's best batch: the benchmark's saturation rule
    cores: Optional[list[int]] = spec(None, ge=0)  # CPU cores split between instances; None: every usable
    memory_utilization: float = spec(gt=0, le=1)  # vLLM: gpu_memory_utilization shared by the k instances
    instance_timeout_s: float = spec(gt=0)  # an instance silent for longer has hung

    def check(self) -> None:
        super().check()
        if 1 not in self.replicas:
            raise BadInput(f"replicas: {self.replicas} must hold 1 (the single-instance baseline)")
        uneven = [(t, k) for t in self.total_batches for k in self.replicas if t % k]
        if uneven:
            raise BadInput(
                f"total_batches: {self.total_batches} must split evenly between {self.replicas} "
                f"instances (not {uneven[0][0]} between {uneven[0][1]})"
            )
        usable = os.sched_getaffinity(0)
        cores = self.cores if self.cores is not None else sorted(usable)
        if not set(cores) <= usable:
            raise BadInput(f"cores: {cores} are not all usable here ({sorted(usable)})")
        if max(self.replicas) > len(cores):
            raise BadInput(
                f"replicas: {max(self.replicas)} instances need at least as many cores; cores has "
                f"{len(cores)} ({cores})"
            )


register_schema(f"{PAPER}/benchmark", BenchmarkConfig)
register_schema(f"{PAPER}/replication", ReplicationConfig)
register_schema(f"{PAPER}/gpu_bench", GpuBenchConfig)

register_schema(f"{PAPER}/figures", FiguresConfig)
register_schema(f"{PAPER}/report", ReportConfig)
