"""Typed schemas of the batching paper's experiments; importing this module registers them with hydra.

Knob values live in conf/batching/<experiment>.yaml (with the paper's value beside each); the schemas
only fix names and types, so a misspelt key or a wrong type fails at compose time, naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from common.config import register_schema
from common.schema import FiguresConfig, RunConfig
from papers.batching.advisor import SweepSettings

PAPER = "batching"


@dataclass
class WorkloadConfig:
    kind: str = MISSING  # fixed | sharegpt | sharegpt_sampled (common.serving.workloads)
    prompt_len: int = MISSING
    output_len: int = MISSING
    sharegpt_path: Optional[str] = None
    seed: int = 0


@dataclass
class SweepConfig(RunConfig):
    """common.serving.harness.SweepSpec as a config: one workload per run (a sweep over workloads is a
    hydra multirun), everything else as in SweepSpec."""

    models: list[str] = MISSING
    batch_sizes: list[int] = MISSING
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    engine: str = MISSING
    engine_options: dict[str, Any] = field(default_factory=dict)
    device: str = MISSING
    dtype: str = MISSING
    num_batches: int = MISSING
    warmup: int = MISSING
    warmup_tokens: Optional[int] = None
    repeats: int = MISSING
    cooldown_s: float = MISSING
    monitor: str = MISSING
    sample_hz: float = MISSING
    progress: bool = True


register_schema(f"{PAPER}/sweep", SweepConfig)


@dataclass
class StudyConfig(RunConfig):
    """Figs 2-4 from stored sweeps (nothing is measured again), beside the authors' H100 tables."""

    sweeps: list[str] = MISSING  # result stores (globs allowed); those absent are skipped
    reference_dir: str = MISSING
    plateau_fraction: float = MISSING


@dataclass
class BreakdownConfig(RunConfig):
    """Fig. 5: where decode time goes per batch size (common.serving.kernels on the hf engine)."""

    models: list[str] = MISSING
    batch_sizes: list[int] = MISSING
    prompt_len: int = MISSING
    decode_steps: int = MISSING
    device: str = MISSING
    dtype: str = MISSING
    progress: bool = True


@dataclass
class NcuConfig(RunConfig):
    """Table I / Fig. 6: Nsight Compute counters of one decode step (scripts/ncu_decode.sh, GPU only)."""

    batch_sizes: list[int] = MISSING
    script: str = MISSING
    timeout_s: float = MISSING


def _inheriting(settings: type, node: str) -> type:
    """`settings` with every field typed as before but defaulting to the same key of the config's `node`:
    a run entry names only what differs from the shared settings, and is checked key by key."""
    hints = typing.get_type_hints(settings)
    fields = [(f.name, hints[f.name], field(default=f"${{{node}.{f.name}}}"))
              for f in dataclasses.fields(settings)]
    made = dataclasses.make_dataclass(f"{settings.__name__}Run", fields)
    made.__module__ = __name__
    return made


SweepSettingsRun = _inheriting(SweepSettings, "advise")


@dataclass
class BcaConfig(RunConfig):
    """The BCA (papers.batching.advisor) on this project's sweep and on the authors' sweeps."""

    own_sweep: str = MISSING
    device_mem_gib: Optional[float] = None  # None: this host's RAM (a CPU sweep) or the GPU's
    advise: SweepSettings = field(default_factory=SweepSettings)  # the settings every run starts from
    authors_runs: dict[str, SweepSettingsRun] = field(default_factory=dict)  # name -> its own settings


@dataclass
class CalibrateConfig(RunConfig):
    """The roofline and the calibrated decode-step model against the authors' H100 data."""

    reference_dir: str = MISSING
    models: list[str] = MISSING
    device: str = MISSING  # a common.hardware.SPECS key
    dtype: str = MISSING


@dataclass
class ReplicateConfig(RunConfig):
    """N replicas of one engine on one device, fed one request stream, against one replica at its
    largest batch."""

    model: str = MISSING
    engine: str = MISSING
    device: str = MISSING
    dtype: str = MISSING
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    num_requests: int = MISSING
    baseline_batch: int = MISSING
    replicas: list[int] = MISSING
    replica_batches: list[int] = MISSING
    memory_fraction: float = MISSING
    warmup: int = MISSING
    warmup_tokens: Optional[int] = None
    repeats: int = MISSING
    mps: bool = False
    vllm_args: list[str] = field(default_factory=list)
    timeout_s: float = MISSING
    progress: bool = True


register_schema(f"{PAPER}/study", StudyConfig)
register_schema(f"{PAPER}/breakdown", BreakdownConfig)
register_schema(f"{PAPER}/ncu", NcuConfig)
register_schema(f"{PAPER}/bca", BcaConfig)
register_schema(f"{PAPER}/calibrate", CalibrateConfig)
register_schema(f"{PAPER}/replicate", ReplicateConfig)

register_schema(f"{PAPER}/figures", FiguresConfig)
