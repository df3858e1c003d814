"""A decode-step time model built from physical terms, fitted once and used where it was not fitted.

One engine step that decodes B sequences whose KV caches hold `context` tokens on average, on a device
with memory bandwidth BW and peak FLOP/s P, for a model of N dense parameters (W bytes of weights read
per step), L layers and KV bytes per token kv:

    t = t_fixed + t_layer * L                              per step: scheduling, launches, one per layer
      + max(W / BW, 2 N B / P)                             weights streamed once (or the dense compute,
                                                           past the ridge point)
      + k_kv * B * context * kv / BW                       KV bytes read, growing with batch x context
      + t_token * B * context + t_seq * B                  per cached token (block tables, page lookups)
                                                           and per sequence (sampling, inputs)
      + r * (t_prefill_layer * L + max(W / BW, 2 N p / P)) r prefill steps per decode step (continuous
                                                           batching admits a request as one finishes),
                                                           p prompt tokens each: weights streamed again

With chunked prefill (vLLM's `enable_chunked_prefill`) the r * p prompt tokens ride in the decode step
instead: the dense term becomes max(W / BW, 2 N (B + r p) / P) and there is no separate prefill step.

The weights and compute terms are the device's datasheet numbers, never fitted: they are what carries a
fit from one model to another (with two models fitted, a free weights term and the per-layer cost cannot
be told apart). The six coefficients (t_fixed, t_layer, k_kv = 1 / the KV read's share of the bandwidth,
t_token, t_seq, t_prefill_layer) are fitted by `fit_step_model`, non-negative least squares on relative
errors, over any mix of models, batches, lengths and sources. They are the engine's and the device's, not
a model's, so the fit predicts a model it never saw from that model's shape alone (`StepModel.step_time`),
and another device's by its bandwidth and FLOP/s (`StepModel.on_device`: the CPU-side seconds stay).

Without a device sheet (a CPU with no measured profile), the weights term is fitted too (`k_w`, seconds
per weight byte) and there is no compute term. `common.serving.roofline` has the shapes, the byte and FLOP
counts and the bare roofline this model extends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from common.serving.roofline import DTYPE_BYTES, ModelShape, kv_bytes_per_token, mape, weight_bytes

COEFFICIENTS = ("t_fixed", "t_layer", "k_kv", "t_token", "t_seq", "t_prefill_layer")
UNITS = {
    "t_fixed": "s",
    "t_layer": "s per layer",
    "k_kv": "x KV bytes / bandwidth",
    "t_token": "s per cached token",
    "t_seq": "s per sequence",
    "t_prefill_layer": "s per layer of a prefill step",
    "k_w": "s per weight byte",
}


@dataclass(frozen=True)
class StepObservation:
    """One measured mean engine step: `batch` sequences holding `context` tokens on average took `time_s`;
    `prefills` prefill steps of `prefill_tokens` tokens each ran per decode step (0 for a pure decode)."""

    shape: ModelShape
    batch: float
    context: float
    time_s: float
    prefills: float = 0.0
    prefill_tokens: float = 0.0
    source: str = ""  # e.g. "offline", "background": errors are reported per model and source
    chunked: bool = False  # prompts prefilled in chunks inside the decode steps (no prefill steps)

    @property
    def model(self) -> str:
        """The model's name: held-out errors are reported per model."""
        return self.shape.name


@dataclass(frozen=True)
class StepModel:
    """Fitted coefficients (COEFFICIENTS, seconds or factors) and the device they were fitted on."""

    device: str | None  # a common.hardware spec name; None: fitted without a sheet (k_w fitted)
    bandwidth: float | None  # B/s
    peak_flops: float | None  # FLOP/s in dtype
    dtype: str
    t_fixed: float
    t_layer: float
    k_kv: float
    t_token: float
    t_seq: float
    t_prefill_layer: float
    k_w: float | None = None  # s per weight byte, only without a device sheet
    fitted_on: tuple[str, ...] = field(default=())  # "<model>/<source>" of the observations

    def _weights(self, shape: ModelShape, tokens: float) -> float:
        """Weights streamed once, or the dense compute when it takes longer (the roofline's max)."""
        w = weight_bytes(shape, self.dtype)
        if self.bandwidth is None:
            return (self.k_w or 0.0) * w
        return max(w / self.bandwidth, 2.0 * shape.dense_params * tokens / self.peak_flops)

    def terms(
        self,
        shape: ModelShape,
        batch: float,
        context: float,
        prefills: float = 0.0,
        prefill_tokens: float = 0.0,
        chunked: bool = False,
    ) -> dict[str, float]:
        """Seconds per step of each physical term (they add up to `step_time`)."""
        kv = batch * context * kv_bytes_per_token(shape, self.dtype)
        kv_s = self.k_kv * kv / self.bandwidth if self.bandwidth else self.k_kv * kv * 1e-12
        riding = prefills * prefill_tokens if chunked else 0.0
        return {
            "fixed": self.t_fixed + self.t_layer * shape.n_layers,
            "weights_or_compute": self._weights(shape, batch + riding),
            "kv_read": kv_s,
            "per_token": self.t_token * batch * context,
            "per_sequence": self.t_seq * batch,
            "prefill": 0.0
            if chunked
            else prefills * (self.t_prefill_layer * shape.n_layers + self._weights(shape, prefill_tokens)),
        }

    def step_time(
        self,
        shape: ModelShape,
        batch: float,
        context: float,
        prefills: float = 0.0,
        prefill_tokens: float = 0.0,
        chunked: bool = False,
    ) -> float:
        """Seconds per engine step: the sum of `terms`."""
        return float(sum(self.terms(shape, batch, context, prefills, prefill_tokens, chunked).values()))

    def predict(self, obs: StepObservation) -> float:
        """The step time of an observation's setting, to score against its measured time."""
        return self.step_time(
            obs.shape, obs.batch, obs.context, obs.prefills, obs.prefill_tokens, obs.chunked
        )

    def throughput(self, shape: ModelShape, batch: float, context: float, **kw) -> float:
        """Decode tokens per second: B per step."""
        return batch / self.step_time(shape, batch, context, **kw)

    def half_ceiling_batch(self, shape: ModelShape, context: float) -> tuple[float, float]:
        """(throughput ceiling, the batch reaching half of it), of pure decode steps at this context."""
        from common.serving.roofline import _half_ceiling_batch

        return _half_ceiling_batch(lambda b: self.step_time(shape, b, context))

    def on_device(self, spec, dtype: str | None = None) -> StepModel:
        """The same engine on another device: its bandwidth and FLOP/s, the same coefficients (the KV read
        keeps its share of the bandwidth; the CPU-side seconds stay, which holds for the same host CPU)."""
        dtype = dtype or self.dtype
        if self.bandwidth is None:
            raise ValueError("a model fitted without a device sheet cannot be moved to another device")
        return StepModel(
            device=getattr(spec, "name", None),
            bandwidth=spec.mem_bandwidth,
            peak_flops=spec.peak_flops[dtype],
            dtype=dtype,
            **{k: getattr(self, k) for k in COEFFICIENTS},
            fitted_on=self.fitted_on,
        )

    def coefficients(self) -> dict[str, float]:
        """The fitted numbers alone (k_w only where no device sheet was used), as reports list them."""
        out = {k: getattr(self, k) for k in COEFFICIENTS}
        if self.bandwidth is None:
            out["k_w"] = self.k_w
        return out

    def to_dict(self) -> dict:
        """JSON-ready, with units, so a saved fit can be read without this code."""
        out = asdict(self)
        out["fitted_on"] = list(self.fitted_on)
        out["units"] = {k: UNITS[k] for k in self.coefficients()}
        return out


def _features(obs: StepObservation, bandwidth: float | None, peak: float | None, dtype: str) -> tuple:
    """(columns multiplying the fitted coefficients, the known part of the step: weights and compute)."""
    s = obs.shape
    kv = obs.batch * obs.context * kv_bytes_per_token(s, dtype)
    steps = 0.0 if obs.chunked else obs.prefills  # separate prefill steps per decode step
    tokens = obs.batch + (obs.prefills * obs.prefill_tokens if obs.chunked else 0.0)
    cols = [
        1.0,
        s.n_layers,
        kv / bandwidth if bandwidth else kv * 1e-12,
        obs.batch * obs.context,
        obs.batch,
        steps * s.n_layers,
    ]
    w = weight_bytes(s, dtype)
    if bandwidth is None:
        return cols + [w * (1.0 + steps)], 0.0
    known = max(w / bandwidth, 2.0 * s.dense_params * tokens / peak) + steps * max(
        w / bandwidth, 2.0 * s.dense_params * obs.prefill_tokens / peak
    )
    return cols, known


def fit_step_model(observations: Sequence[StepObservation], device=None, dtype: str = "fp16") -> StepModel:
    """The one fitting routine: non-negative least squares on relative errors (every observation counts
    alike, whatever its step time). `device`: a common.hardware DeviceSpec (bandwidth and FLOP/s), or None
    to fit the weights term as well."""
    from scipy.optimize import nnls

    observations = list(observations)
    if len(observations) < 2:
        raise ValueError("a step-model fit needs at least two observations")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r}: one of {', '.join(DTYPE_BYTES)}")
    bandwidth = None if device is None else float(device.mem_bandwidth)
    peak = None if device is None else float(device.peak_flops[dtype])
    rows = [_features(o, bandwidth, peak, dtype) for o in observations]
    x = np.array([r[0] for r in rows], dtype=np.float64)
    known = np.array([r[1] for r in rows], dtype=np.float64)
    measured = np.array([o.time_s for o in observations], dtype=np.float64)
    if (measured <= 0).any() or not np.isfinite(measured).all():
        raise ValueError("observed step times must be positive and finite")
    weight = 1.0 / measured  # relative residuals
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0  # a column that is zero everywhere (no prefills) gets coefficient 0
    coef, _ = nnls(x / scale * weight[:, None], (measured - known) * weight)
    coef = coef / scale
    values = dict(zip(COEFFICIENTS, map(float, coef[: len(COEFFICIENTS)])))
    return StepModel(
        device=getattr(device, "name", None),
        bandwidth=bandwidth,
        peak_flops=peak,
        dtype=dtype,
        **values,
        k_w=float(coef[-1]) if device is None else None,
        fitted_on=tuple(sorted({f"{o.model}/{o.source}" for o in observations})),
    )


def errors(model: StepModel, observations: Iterable[StepObservation]) -> dict[str, dict]:
    """Per "<model>/<source>": step-time MAPE and largest error (%), throughput MAPE, and the batches."""
    groups: dict[str, list[StepObservation]] = {}
    for o in observations:
        groups.setdefault(f"{o.model}/{o.source}" if o.source else o.model, []).append(o)
    out = {}
    for key, obs in groups.items():
        measured = np.array([o.time_s for o in obs])
        predicted = np.array([model.predict(o) for o in obs])
        ape = np.abs(predicted - measured) / measured * 100
        out[key] = {
            "n": len(obs),
            "batches": [round(o.batch, 3) for o in obs],
            "step_mape_pct": float(ape.mean()),
            "step_max_ape_pct": float(ape.max()),
            "throughput_mape_pct": mape(
                [o.batch / p for o, p in zip(obs, predicted)], [o.batch / o.time_s for o in obs]
            ),
        }
    return out


def decode_observations(
    shape: ModelShape, batch: float, prompt_len: float, steps: int, time_s: float, source: str = ""
) -> StepObservation:
    """A static batch's decode phase as one mean step: `steps` decode steps after a `prompt_len` prompt
    (step s reads prompt_len + s tokens per sequence; every term is linear in the context, so the mean
    step is the step at the mean context)."""
    if steps < 1 or not math.isfinite(time_s) or time_s <= 0:
        raise ValueError(f"a decode phase needs steps >= 1 and a positive time, not {steps}, {time_s}")
    return StepObservation(
        shape, float(batch), float(prompt_len) + (steps + 1) / 2.0, time_s / steps, source=source
    )
