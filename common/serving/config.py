"""The serving settings both serving papers (batching, slm_energy) share: one schema, one check.

The dataclasses are the shared part of each serving command's schema (a paper's schema subclasses one
and adds its own keys), so `engine=vllm`, `dtype=fp16` or `workload.output_len=64` mean the same in
every serving command. Each key's own rule (common.schema.spec) and the one cross-key check,
`check_serving` (known models, a workload's file or distribution, a device that is here), run when the
config is validated (common.validation, before anything is written), raising `BadInput` that names the
key; `workload_spec` and `sweep_settings` then turn the checked values into the harness's objects.

Plain dataclasses, no hydra: the papers register them with hydra, while the GPU-node commands read the
same files with `common.plain_config`. Neither torch nor pandas is imported here (only to ask whether
a CUDA device is present, for a config that names one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from common.errors import BadInput
from common.schema import RunConfig, spec
from common.serving.models import DTYPES
from common.serving.workloads import KINDS

ENGINES = ("hf", "vllm")
DEVICES = ("auto", "cpu", "cuda")
SAMPLED = ("mean_prompt", "mean_output", "sigma_prompt", "sigma_output")  # a sharegpt_sampled distribution
MONITORS = ("auto", "nvml", "cpu")  # common.gpu_metrics backends a config may name (replay is for tests)
_ABSENT = object()


@dataclass
class WorkloadConfig:
    """The requests of a run: common.serving.workloads.WorkloadSpec as a config."""

    kind: str = spec(choices=KINDS)  # fixed | sharegpt (a local JSON file) | sharegpt_sampled (no file)
    prompt_len: int = spec(ge=1)  # fixed: every prompt's length
    output_len: int = spec(ge=1)  # fixed: every request's new tokens
    sharegpt_path: Optional[str] = spec(None, free="a local ShareGPT JSON file; checked for kind=sharegpt")
    seed: int = spec(0, ge=0)  # the request list is drawn once with this seed and stored beside the results
    # sharegpt_sampled: ShareGPT-like lengths without the file, log-normal, filtered as the vLLM benchmark
    # client filters, with these means after filtering and these log-normal spreads
    mean_prompt: Optional[float] = spec(None, gt=0)
    mean_output: Optional[float] = spec(None, gt=0)
    sigma_prompt: Optional[float] = spec(None, ge=0)
    sigma_output: Optional[float] = spec(None, ge=0)


@dataclass
class ServingConfig(RunConfig):
    """Every serving command: one engine, one precision, each measurement after a warm-up."""

    engine: str = spec(choices=ENGINES)  # hf (transformers static batch) | vllm (GPU nodes, .venv-vllm)
    device: str = spec(choices=DEVICES)  # auto: cuda where there is one
    dtype: str = spec(choices=DTYPES)
    warmup: int = spec(ge=0)  # untimed runs before measuring
    warmup_tokens: Optional[int] = spec(None, ge=1)  # new tokens per warm-up run; None: the workload's own
    repeats: int = spec(ge=1)  # measured repeats; rows hold their median
    progress: bool = spec(True, free="a progress bar, or none")

    def check(self) -> None:
        """The cross-key check, check_serving; BadInput names the first wrong key."""
        check_serving(self)


@dataclass
class MonitoredServingConfig(ServingConfig):
    """A serving command that measures energy through common.gpu_metrics and passes engine options."""

    engine_options: dict[str, Any] = spec(factory=dict, free="keyword arguments of the engine")
    monitor: str = spec(choices=MONITORS)
    sample_hz: float = spec(gt=0)  # power samples per second inside energy windows


@dataclass
class ServingSweepConfig(MonitoredServingConfig):
    """A sweep of models x batch sizes through common.serving.harness (one cell per pair and workload)."""

    models: list[str] = spec(nonempty=True, free="built-in architectures or checkpoints; checked by name")
    batch_sizes: list[int] = spec(nonempty=True, ge=1)
    num_batches: int = spec(ge=1)  # static batches per cell: a cell serves batch_size * num_batches requests
    cooldown_s: float = spec(ge=0)  # pause after each measured cell (a GPU's clocks and temperature settle)


@dataclass
class EngineBenchConfig(RunConfig):
    """A benchmark of the hf engine on one model (common.serving.bench): what it loads, and where."""

    model: str = spec(free="a built-in architecture or a checkpoint; checked by name")
    device: str = spec(choices=DEVICES)  # auto: cuda where there is one
    dtype: str = spec(choices=DTYPES)

    def check(self) -> None:
        """The cross-key check, check_serving; BadInput names the first wrong key."""
        check_serving(self)


# ---- the check ----------------------------------------------------------------------------------------
def _get(cfg, key: str) -> Any:
    """cfg.key for a DictConfig or a dataclass; _ABSENT where the command has no such key."""
    if isinstance(cfg, dict):
        return cfg.get(key, _ABSENT)
    return getattr(cfg, key, _ABSENT)


def plain(value: Any) -> Any:
    """A config value as plain python (a DictConfig's nodes become dicts and lists)."""
    if hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [plain(v) for v in value]
    return value


def check_models(models, key: str = "models") -> None:
    """Built-in architectures, SmolLM2, or a real checkpoint (a hub org/name or a local path)."""
    from common.serving.models import ARCHS, SMOLLM2

    models = list(models)
    unknown = [m for m in models if m not in ARCHS and m != SMOLLM2 and "/" not in m]
    if not models or unknown:
        raise BadInput(
            f"{key}: {unknown or 'empty'}: use built-in models ({', '.join(ARCHS)}, {SMOLLM2}) "
            "or a real checkpoint (hub org/name or a local path)"
        )


def _check_device(device: str, engine: str) -> str:
    """The device's type; a CUDA device must be here, and vLLM needs one (and its package)."""
    from common.serving.models import device_type

    if device not in DEVICES:
        raise BadInput(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    kind = device_type(device)
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BadInput(f"device: {device}, but torch sees no CUDA device here")
    if engine == "vllm":
        if kind != "cuda":
            raise BadInput("engine: vllm serves on a GPU; there is no CUDA device here (use engine=hf)")
        from common.serving.vllm_engine import VLLMUnavailable, import_vllm

        try:
            import_vllm()
        except VLLMUnavailable as err:
            raise BadInput(f"engine: {err}") from None
    return kind


def check_serving(cfg) -> None:
    """What the keys' own rules cannot say, for whichever shared serving keys the config has: models
    that exist, each workload's file or distribution, and a device (and engine) that is here. Every
    serving schema's `check` calls it; `BadInput` names the first wrong key."""
    for key, single in (("models", False), ("model", True)):
        value = _get(cfg, key)
        if value is not _ABSENT:
            check_models([value] if single else value, key)
    workload = _get(cfg, "workload")
    if workload is not _ABSENT:
        workload_spec(workload, "workload")
    workloads = _get(cfg, "workloads")
    if workloads is not _ABSENT:
        if not workloads:
            raise BadInput("workloads: give at least one workload")
        for i, w in enumerate(workloads):
            workload_spec(w, f"workloads[{i}]")
    device = _get(cfg, "device")
    if device is not _ABSENT:
        engine = _get(cfg, "engine")
        _check_device(device, "hf" if engine is _ABSENT else engine)


def workload_spec(w, key: str = "workload"):
    """The checked WorkloadSpec of a workload config (`key` names it in errors)."""
    from common.serving.workloads import SampledLengths, WorkloadSpec

    if w.kind not in KINDS:
        raise BadInput(f"{key}.kind: {w.kind!r} is not one of {KINDS}")
    if w.kind == "sharegpt" and not (w.sharegpt_path and Path(w.sharegpt_path).is_file()):
        raise BadInput(
            f"{key}.sharegpt_path: kind=sharegpt needs a local ShareGPT JSON file, not {w.sharegpt_path!r}"
        )
    if min(w.prompt_len, w.output_len) < 1:
        raise BadInput(f"{key}: prompt_len and output_len must be >= 1")
    sampled = None
    if w.kind == "sharegpt_sampled":
        shape = {k: _get(w, k) for k in SAMPLED}
        absent = [k for k, v in shape.items() if v is _ABSENT or v is None]
        if absent:
            raise BadInput(
                f"{key}.{absent[0]}: kind=sharegpt_sampled needs the lengths' distribution "
                f"({', '.join(SAMPLED)})"
            )
        if (
            min(shape["mean_prompt"], shape["mean_output"]) <= 0
            or min(shape["sigma_prompt"], shape["sigma_output"]) < 0
        ):
            raise BadInput(f"{key}.mean_prompt: the means must be > 0 and the sigmas >= 0")
        sampled = SampledLengths(**{k: float(v) for k, v in shape.items()})
    return WorkloadSpec(w.kind, int(w.prompt_len), int(w.output_len), w.sharegpt_path, int(w.seed), sampled)


# SweepSpec settings a sweep config holds under the same names (everything but the grid)
SWEEP_SETTINGS = (
    "engine",
    "device",
    "dtype",
    "num_batches",
    "warmup",
    "warmup_tokens",
    "repeats",
    "cooldown_s",
    "monitor",
    "sample_hz",
)


def sweep_settings(cfg) -> dict:
    """common.serving.harness.SweepSpec keyword arguments from a sweep config (grid and workloads aside)."""
    return {**{k: plain(_get(cfg, k)) for k in SWEEP_SETTINGS}, "engine_options": plain(cfg.engine_options)}
