"""Typed schemas of the batching paper's experiments; importing this module registers them with hydra.

Knob values live in conf/batching/<experiment>.yaml (with the paper's value beside each); the schemas
only fix names and types, so a misspelt key or a wrong type fails at compose time, naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Optional

from common.config import register_schema
from common.errors import BadInput
from common.hardware.specs import DTYPES
from common.report import ReportConfig
from common.schema import FiguresConfig, RunConfig, spec
from common.serving.config import MonitoredServingConfig, ServingConfig, ServingSweepConfig, WorkloadConfig
from papers.batching.advisor import SELECTIONS, SweepSettings

PAPER = "batching"


@dataclass
class SweepConfig(ServingSweepConfig):
    """common.serving.harness.SweepSpec as a config: the shared sweep keys (common.serving.config) and
    one workload per run (a sweep over workloads is a hydra multirun)."""

    workload: WorkloadConfig = field(default_factory=WorkloadConfig)


register_schema(f"{PAPER}/sweep", SweepConfig)


@dataclass
class StudyConfig(RunConfig):
    """Figs 2-4 from stored sweeps (nothing is measured again), beside the authors' H100 tables."""

    sweeps: list[str] = spec(nonempty=True, free="result stores (globs allowed); those absent are skipped")
    reference_dir: str = spec(free="the authors' data; each file is checked when it is read")
    plateau_fraction: float = spec(gt=0, le=1)  # of the curve's best throughput


@dataclass
class BreakdownConfig(RunConfig):
    """Fig. 5: where decode time goes per batch size (common.serving.kernels on the hf engine)."""

    models: list[str] = spec(nonempty=True, free="built-in architectures or hub names, checked by name")
    batch_sizes: list[int] = spec(nonempty=True, ge=1)
    prompt_len: int = spec(ge=1)
    decode_steps: int = spec(ge=1)
    device: str = spec(free="auto, cpu or cuda[:N]; resolved when the run starts")
    dtype: str = spec(free="one of common.serving.models.DTYPES, checked when the run starts")
    progress: bool = spec(True, free="a progress bar or none")


@dataclass
class NcuConfig(RunConfig):
    """Table I / Fig. 6: Nsight Compute counters of one decode step (scripts/ncu_decode.sh, GPU only)."""

    batch_sizes: list[int] = spec(nonempty=True, ge=1)
    script: str = spec(free="the job script; checked to be a file when the run starts")
    timeout_s: float = spec(gt=0)  # per batch size


def _inheriting(settings: type, node: str) -> type:
    """`settings` with every field typed as before but defaulting to the same key of the config's `node`:
    a run entry names only what differs from the shared settings, and is checked key by key."""
    hints = typing.get_type_hints(settings)
    fields = [
        (f.name, hints[f.name], field(default=f"${{{node}.{f.name}}}")) for f in dataclasses.fields(settings)
    ]
    made = dataclasses.make_dataclass(f"{settings.__name__}Run", fields)
    made.__module__ = __name__
    return made


SweepSettingsRun = _inheriting(SweepSettings, "advise")


@dataclass
class BcaConfig(RunConfig):
    """The BCA (papers.batching.advisor) on this project's sweep and on the authors' sweeps."""

    own_sweep: str = spec(free="a result store; when absent, that run is skipped and the summary says so")
    device_mem_gib: Optional[float] = spec(None, gt=0)  # None: this host's RAM (a CPU sweep) or the GPU's
    # the settings every run starts from; unresolved, so that a run's preset fills what it leaves unset
    advise: SweepSettings = field(default_factory=SweepSettings.unresolved)
    authors_runs: dict[str, SweepSettingsRun] = spec(  # name -> its own settings
        factory=dict, free="name -> the advise keys that differ; each entry is checked by check()"
    )

    def check(self) -> None:
        """Every run's settings, as the advisor will get them, before the first run starts."""
        from common.cli import from_mapping

        for name, options in self.authors_runs.items():
            from_mapping(SweepSettings, options, f"authors_runs.{name}").inputs()


@dataclass
class CalibrateConfig(RunConfig):
    """The decode-step model (common.serving.step_model) against the authors' H100 data: in-sample,
    batch-held-out and model-held-out errors."""

    reference_dir: str = spec(free="the authors' data; each file is checked when it is read")
    models: list[str] = spec(nonempty=True, free="models of the authors' data, checked against it")
    device: str = spec(free="a common.hardware.SPECS key, looked up when the run starts")
    dtype: str = spec(choices=DTYPES)  # of the roofline's bytes and FLOP/s
    sources: list[str] = spec(nonempty=True, choices=("offline", "background"))
    batch_split: float = spec(gt=0)  # batch-held-out: fitted on batches <= this, scored on the larger ones
    transfer_fit: list[str] = spec(nonempty=True, free="a proper subset of models, checked against them")
    goal_batch_mape_pct: float = spec(gt=0)
    goal_model_mape_pct: float = spec(gt=0)

    def check(self) -> None:
        """The models are the authors' (their data has no other), and transfer_fit a proper subset of them."""
        authors = ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b")
        unknown = [m for m in self.models if m not in authors]
        if unknown:
            raise BadInput(f"models: {unknown} are not in the authors' data ({', '.join(authors)})")
        if not set(self.transfer_fit) < set(self.models):
            raise BadInput(
                f"transfer_fit: {list(self.transfer_fit)} must be a proper subset of models "
                f"{list(self.models)} (the rest are held out)"
            )


@dataclass
class ReplicateConfig(ServingConfig):
    """N replicas of one engine on one device, fed one request stream, against one replica at its
    largest batch (the shared serving keys: common.serving.config)."""

    model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    num_requests: int = spec(ge=1)  # one stream, split round-robin between the replicas
    baseline_batch: int = spec(ge=1)  # one replica, all the device, at this batch
    replicas: list[int] = spec(nonempty=True, ge=1)  # replica counts besides the baseline
    replica_batches: list[int] = spec(nonempty=True, ge=1)  # each replica's batch cap
    memory_fraction: float = spec(gt=0, le=1)  # of the device, split evenly between the replicas
    mps: bool = spec(False, free="vllm on a GPU: the servers under NVIDIA MPS")
    vllm_args: list[str] = spec(factory=list, free="extra arguments of every vLLM server")
    timeout_s: float = spec(gt=0)  # a replica silent this long has hung

    def check(self) -> None:
        import os

        from common.serving.models import device_type

        super().check()
        if self.num_requests < max(self.replicas):
            raise BadInput(
                f"num_requests: {self.num_requests} leaves one of {max(self.replicas)} replicas idle"
            )
        cores = sorted(os.sched_getaffinity(0))
        if self.engine == "hf" and max(self.replicas) > len(cores):
            raise BadInput(
                f"replicas: {max(self.replicas)} hf replicas need a core each; this process may "
                f"use {len(cores)} ({cores})"
            )
        if self.mps and device_type(self.device) != "cuda":
            raise BadInput("mps: NVIDIA MPS shares a GPU; there is no CUDA device here")


@dataclass
class TuneConfig(MonitoredServingConfig):
    """The online search for B_opt on a live engine (papers.batching.tune), and its comparison with the
    full sweep (the shared serving keys: common.serving.config)."""

    model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    batch_sizes: list[int] = spec(nonempty=True, ge=1)  # the grid the search walks (and the sweep measures)
    slo_ms: Optional[float] = spec(None, gt=0)  # absolute per-token latency SLO; null: slo_factor
    slo_factor: float = spec(gt=0)  # SLO = factor x the latency at the batch nearest ref_batch
    ref_batch: float = spec(gt=0)
    epsilon: float = spec(ge=0, lt=1)  # keep T(B) / (B T(1)) > epsilon; 0: no filter
    selection: str = spec(choices=SELECTIONS)
    min_gain: float = spec(ge=0)  # the plateau: stop when a doubling gains less than this share
    probe_tokens: int = spec(ge=3)  # new tokens per short probe (the gaps after the first are timed)
    probe_repeats: int = spec(ge=1)  # short runs per probe, the median kept
    baseline_util: float = spec(gt=0, le=1)  # the engine's default gpu_memory_utilization (vLLM's 0.9)
    device_mem_gib: Optional[float] = spec(None, gt=0)  # null: the GPU's memory, or this host's RAM
    compare_sweep: bool = spec(False, free="also measure the full sweep and compare")

    def check(self) -> None:
        super().check()
        if self.epsilon > 0 and 1 not in self.batch_sizes:
            raise BadInput("batch_sizes: the efficiency filter (epsilon > 0) needs batch 1 in the grid")
        if self.workload.output_len <= self.probe_tokens and self.workload.kind == "fixed":
            raise BadInput(
                f"probe_tokens: {self.probe_tokens} is not shorter than the workload's "
                f"{self.workload.output_len} output tokens (a short probe would be a full one)"
            )


register_schema(f"{PAPER}/study", StudyConfig)
register_schema(f"{PAPER}/breakdown", BreakdownConfig)
register_schema(f"{PAPER}/ncu", NcuConfig)
register_schema(f"{PAPER}/bca", BcaConfig)
register_schema(f"{PAPER}/calibrate", CalibrateConfig)
register_schema(f"{PAPER}/replicate", ReplicateConfig)
register_schema(f"{PAPER}/tune", TuneConfig)

register_schema(f"{PAPER}/figures", FiguresConfig)
register_schema(f"{PAPER}/report", ReportConfig)
