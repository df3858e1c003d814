"""Bytes moved versus FLOPs per decode step: the arithmetic both serving papers explain their curves with.

One decode step of a batch of B sequences, each holding `context` tokens in the KV cache, runs two kinds
of kernels:
  dense (every nn.Linear, the LM head included): reads every weight once per step whatever B is, and
    does 2 FLOPs per weight per sequence, so its arithmetic intensity grows with B;
  attention: reads every sequence's K and V (B * context * KV bytes per token) and does 4 FLOPs per
    cached element pair (QK^T and AV), so its intensity is ~ heads / kv_heads FLOP per byte in fp16
    at any B: decode attention stays memory-bound, which is the "memory gap" of large batches.
The roofline step time is the sum over kernel classes of max(FLOPs / peak, bytes / bandwidth). What a
real engine adds to it (a fixed and a per-layer cost per step, the KV read below full bandwidth, per-token
and per-sequence costs, the prefill steps continuous batching interleaves) is `common.serving.step_model`,
fitted to measured steps by its one routine, `fit_step_model`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
KERNEL_CLASSES = ("dense", "attention")


@dataclass(frozen=True)
class ModelShape:
    """What the arithmetic needs from a model; built from a transformers config by `model_shape`."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_params: int  # every parameter once (tied embeddings once)
    dense_params: int  # parameters of the nn.Linear layers a decode step runs (LM head included)
    dense_io: int  # sum of in_features + out_features over those layers: activations read and written
    other_params: int  # norms etc.: read every step; embedding tables (only B rows read) excluded


def kv_bytes_per_token(shape: ModelShape, dtype: str = "fp16") -> int:
    """K and V of one token in every layer: 2 * layers * kv_heads * head_dim * bytes per element."""
    return 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * DTYPE_BYTES[dtype]


@functools.lru_cache(maxsize=32)
def _shape_of_name(name: str) -> ModelShape:
    from common.serving.models import get_config

    return shape_from_config(get_config(name), name)


def model_shape(model) -> ModelShape:
    """From a built-in name (see serving.models), a checkpoint name, or a transformers config."""
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str):
        return _shape_of_name(model)
    return shape_from_config(model, getattr(model, "name_or_path", "") or model.model_type)


def shape_from_config(config, name: str) -> ModelShape:
    """Counts parameters by module type on the meta device: exact for any architecture, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    dense = {id(p): p for m in linear for p in m.parameters()}
    unique = {id(p): p for p in model.parameters()}
    other = sum(p.numel() for i, p in unique.items() if i not in dense and i not in embeddings)
    n_heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    return ModelShape(
        name=name,
        n_layers=config.num_hidden_layers,
        d_model=config.hidden_size,
        n_heads=n_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or n_heads,
        head_dim=head_dim,
        n_params=sum(p.numel() for p in unique.values()),
        dense_params=sum(p.numel() for p in dense.values()),
        dense_io=sum(m.in_features + m.out_features for m in linear),
        other_params=other,
    )


# ---- the roofline ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelCost:
    """Both roofline times kept, not only the max, so a figure can show how far a step is from the
    other roof (how memory-bound decode still is at a large batch)."""

    flops: float
    bytes: float
    compute_s: float
    memory_s: float

    @property
    def time_s(self) -> float:
        """The roofline's time: the slower of the two roofs."""
        return max(self.compute_s, self.memory_s)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOP per byte."""
        return self.flops / self.bytes

    @property
    def bound(self) -> str:
        """Which roof limits the step: the paper's claim is that decode stays "memory"."""
        return "compute" if self.compute_s > self.memory_s else "memory"


def weight_bytes(shape: ModelShape, dtype: str) -> float:
    """Bytes of weights one decode step reads (dense layers and norms; embedding rows are negligible)."""
    return (shape.dense_params + shape.other_params) * DTYPE_BYTES[dtype]


def step_costs(
    shape: ModelShape, batch: float, context: float, device, dtype: str = "fp16"
) -> dict[str, KernelCost]:
    """Per kernel class, one decode step. device: a common.hardware DeviceSpec (peak_flops, mem_bandwidth)."""
    el = DTYPE_BYTES[dtype]
    peak, bw = device.peak_flops[dtype], device.mem_bandwidth
    dense_flops = 2.0 * shape.dense_params * batch
    dense_bytes = weight_bytes(shape, dtype) + batch * shape.dense_io * el
    attn_flops = 4.0 * batch * context * shape.n_heads * shape.head_dim * shape.n_layers
    kv_read = batch * context * kv_bytes_per_token(shape, dtype)
    attn_bytes = kv_read + 2.0 * batch * shape.d_model * shape.n_layers * el  # + queries in, outputs out
    return {
        "dense": KernelCost(dense_flops, dense_bytes, dense_flops / peak, dense_bytes / bw),
        "attention": KernelCost(attn_flops, attn_bytes, attn_flops / peak, attn_bytes / bw),
    }


def step_time(shape: ModelShape, batch: float, context: float, device, dtype: str = "fp16") -> float:
    """Roofline step time: kernel classes run one after the other, each at its own bound."""
    return sum(c.time_s for c in step_costs(shape, batch, context, device, dtype).values())


def throughput(shape: ModelShape, batch: float, context: float, device, dtype: str = "fp16") -> float:
    """Decode throughput T(B) in tokens per second: B tokens per step."""
    return batch / step_time(shape, batch, context, device, dtype)


def _half_ceiling_batch(t_of_b) -> tuple[float, float]:
    """(ceiling, B_h) for any step-time function t(B) that grows at most linearly: the ceiling is the
    large-B limit B / t(B); B_h the batch at which T(B) = ceiling / 2, by bisection (T is increasing)."""
    big = 1e9
    ceiling = big / t_of_b(big)
    lo, hi = 1e-6, big
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if mid / t_of_b(mid) < ceiling / 2:
            lo = mid
        else:
            hi = mid
    return ceiling, hi


def half_ceiling_batch(shape: ModelShape, context: float, device, dtype: str = "fp16") -> tuple[float, float]:
    """(throughput ceiling in tok/s, B_h): batching past a few B_h buys little throughput."""
    return _half_ceiling_batch(lambda b: step_time(shape, b, context, device, dtype))


def regimes(shape: ModelShape, batch: float, context: float, device, dtype: str = "fp16") -> dict:
    """Per kernel class: intensity, the device's ridge point, which bound applies; and for the step,
    the bound of the class that takes longest."""
    costs = step_costs(shape, batch, context, device, dtype)
    ridge = device.peak_flops[dtype] / device.mem_bandwidth
    out = {
        name: {
            "intensity_flop_per_byte": c.intensity,
            "ridge_flop_per_byte": ridge,
            "bound": c.bound,
            "time_s": c.time_s,
            "flops": c.flops,
            "bytes": c.bytes,
        }
        for name, c in costs.items()
    }
    compute = sum(c.compute_s for c in costs.values() if c.bound == "compute")
    memory = sum(c.memory_s for c in costs.values() if c.bound == "memory")
    out["step"] = {"bound": "compute" if compute > memory else "memory", "time_s": compute + memory}
    return out


# ---- errors ----------------------------------------------------------------------------------------
def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error, in percent."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return float(np.mean(np.abs(p - m) / np.abs(m)) * 100)
