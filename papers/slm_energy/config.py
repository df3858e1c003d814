"""Typed schemas of the SLM serving experiments; importing this module registers them with hydra.

Values live in conf/slm_energy/<experiment>.yaml, with the paper's value beside each; the schemas fix
names and types, so a misspelt key or a wrong type fails at compose time with the key named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from common.config import register_schema
from common.schema import FiguresConfig, RunConfig

PAPER = "slm_energy"


@dataclass
class WorkloadConfig:
    """common.serving.workloads.WorkloadSpec as a config."""

    kind: str = "fixed"  # fixed | sharegpt | sharegpt_sampled
    prompt_len: int = 161
    output_len: int = 338
    sharegpt_path: Optional[str] = None
    seed: int = 0


@dataclass
class ServingConfig(RunConfig):
    """What both experiments share: the engine, the precision and how each cell is measured."""

    engine: str = MISSING
    engine_options: dict[str, Any] = field(default_factory=dict)
    device: str = MISSING
    dtype: str = MISSING
    warmup: int = MISSING
    warmup_tokens: Optional[int] = None
    repeats: int = MISSING
    monitor: str = MISSING
    sample_hz: float = MISSING
    progress: bool = True


@dataclass
class RooflineConfig:
    """The analytical prediction of each model's Pareto point on devices we do not have here."""

    devices: list[str] = MISSING  # common.hardware.SPECS keys
    dtype: str = MISSING
    memory_utilization: float = MISSING  # share of device memory a serving engine may fill
    max_batch: int = MISSING  # the predicted curve's batch grid: powers of two up to this
    models: list[str] = field(default_factory=list)  # predicted only (not run), at the lengths below
    prompt_len: int = MISSING
    output_len: int = MISSING


@dataclass
class BenchmarkConfig(ServingConfig):
    models: list[str] = MISSING
    batch_sizes: list[int] = MISSING
    max_batch: dict[str, int] = field(default_factory=dict)  # model -> largest batch to run
    workloads: list[WorkloadConfig] = MISSING
    num_batches: int = MISSING
    cooldown_s: float = MISSING
    tolerance: float = MISSING
    latency_metric: str = MISSING
    roofline: RooflineConfig = field(default_factory=RooflineConfig)


@dataclass
class ReplicationConfig(ServingConfig):
    model: str = MISSING
    replicas: list[int] = MISSING
    total_batches: list[int] = MISSING  # over all instances: each of k instances serves total / k
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    tolerance: float = MISSING
    cores: Optional[list[int]] = None  # CPU cores to split between instances; None: every usable one
    memory_utilization: float = MISSING  # vLLM: gpu_memory_utilization shared by the k instances
    instance_timeout_s: float = MISSING


register_schema(f"{PAPER}/benchmark", BenchmarkConfig)
register_schema(f"{PAPER}/replication", ReplicationConfig)

register_schema(f"{PAPER}/figures", FiguresConfig)
