"""The Batching Configuration Advisor (BCA) of Mind the Memory Gap, as pure functions.

Why it exists: decode throughput plateaus long before the KV cache is full, so an engine left at its
default (claim 90% of the device, admit as many sequences as fit) spends most of its memory on batch
sizes that buy almost no throughput. The BCA picks the batch past which batching no longer pays and
sizes the engine's memory for that batch only, so the rest of the device can hold more replicas.

The rule, on a curve of throughput T(B) and per-token latency L(B) (ITL or TPOT) over batch sizes B:

    B_opt = argmax T(B)  over  { B : L(B) <= SLO  and  T(B) / (B * T(1)) > epsilon }

T(B) / (B * T(1)) is the throughput efficiency: 1 is perfect linear scaling from one sequence, so
epsilon drops the batch sizes whose extra sequences mostly wait for bandwidth; epsilon = 0 turns the
filter off (and then T(1) is not needed). On equal throughput the smaller batch wins (same throughput,
less memory); on equal batch too, the smaller cap. The SLO is absolute (ms) or a factor times the latency
at the batch nearest a reference batch (nearest by |B - ref|, the smaller batch on equal distance).

The memory a replica at B_opt needs, in the terms vLLM's `gpu_memory_utilization` is defined in:

    footprint  = weights + KV(B_opt) + activations(cap) + runtime          (what the process holds)
    budget     = weights + KV(B_opt) + activations(cap) + runtime counted by vLLM
    gpu_memory_utilization = budget / device memory, rounded up to 0.001

KV(B_opt) is the measured peak KV usage times the KV pool it is a fraction of, where the sweep has it,
else the bound B * (prompt + output tokens) * KV bytes per token. Activations and runtime come from
vLLM's own start-up accounting (reference/server_memory.csv: weights, peak torch memory, initial usage,
KV pool at the smallest and largest cap), or a measured peak, or a user's number; see `Overhead`.
Freed memory is (baseline utilization - utilization) x device: what lowering vLLM's knob from its default
(0.9) gives back, the authors' "extra KV cache" when the overhead stays the same. Replicas that fit:
floor(baseline utilization / utilization), fewer if their footprints (budget plus the runtime vLLM does
not count) would not fit the device together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from common.errors import BadInput

GiB = 2**30
GB = 1e9
VLLM_DEFAULT_UTIL = 0.9  # vLLM's default gpu_memory_utilization; the authors ran with it


# ---- the curve ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """One throughput-latency curve over batch sizes (measured or predicted), sorted by batch then cap.

    batch is the axis the rule ranks (the configured cap, or the measured mean running batch); cap is the
    engine setting (max_num_seqs) that produced each point, which is what a user configures.
    """

    label: str
    batch: np.ndarray
    cap: np.ndarray
    throughput: np.ndarray
    latency_ms: np.ndarray
    kv_bytes: np.ndarray | None = None  # measured peak KV-cache bytes per point; None: not measured
    peak_batch: np.ndarray | None = None  # most sequences at once (for the KV bound); None: the batch
    preemptions: np.ndarray | None = None
    prompt_len: float | None = None
    output_len: float | None = None
    skipped: tuple[str, ...] = ()  # points left out, each saying why

    def __post_init__(self):
        n = len(self.batch)
        arrays = {"cap": self.cap, "throughput": self.throughput, "latency_ms": self.latency_ms,
                  "kv_bytes": self.kv_bytes, "peak_batch": self.peak_batch, "preemptions": self.preemptions}
        for name, arr in arrays.items():
            if arr is not None and len(arr) != n:
                raise ValueError(f"{self.label}: {name} has {len(arr)} points, batch has {n}")
        if n == 0:
            raise BadInput(f"{self.label}: the sweep has no usable point"
                           + (f" ({'; '.join(self.skipped)})" if self.skipped else ""))
        if (np.asarray(self.batch) <= 0).any() or (np.asarray(self.throughput) <= 0).any():
            raise BadInput(f"{self.label}: batch sizes and throughputs must be positive")


def make_curve(label: str, batch, throughput, latency_ms, cap=None, **kw) -> Curve:
    """A Curve from plain sequences, sorted by (batch, cap); cap defaults to the batch itself."""
    b = np.asarray(batch, dtype=np.float64)
    c = b.copy() if cap is None else np.asarray(cap, dtype=np.float64)
    order = np.lexsort((c, b))
    arrays = {k: (None if v is None else np.asarray(v, dtype=np.float64)[order]) for k, v in kw.items()
              if k in ("kv_bytes", "peak_batch", "preemptions")}
    rest = {k: v for k, v in kw.items() if k not in arrays}
    return Curve(label, b[order], c[order], np.asarray(throughput, dtype=np.float64)[order],
                 np.asarray(latency_ms, dtype=np.float64)[order], **arrays, **rest)


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInput(f"{source}: no column {', '.join(map(repr, missing))}; it has "
                       f"{', '.join(map(str, frame.columns))}")


def curve_from_frame(frame: pd.DataFrame, *, label: str, source: str, batch_col: str, throughput_col: str,
                     latency_col: str, cap_col: str | None = None, kv_col: str | None = None,
                     kv_unit: str = "pct", kv_pool_bytes: float | Callable[[float], float] | None = None,
                     peak_batch_col: str | None = None, preemptions_col: str | None = None,
                     prompt_len: float | None = None, output_len: float | None = None) -> Curve:
    """One curve from a sweep table (one row per run). Rows with an empty metric are skipped, each named
    in `skipped`, never read as zero: a run that produced nothing says nothing about its batch size.

    kv_unit "pct": kv_col is the peak % of the KV pool in use (the authors' max_kv_cache_usage_pct) and
    kv_pool_bytes (bytes, or a function of the cap: vLLM's pool shrinks as the cap grows) converts it;
    "bytes": kv_col holds bytes already (this project's kv_cache_bytes).
    """
    if kv_unit not in ("pct", "bytes"):
        raise BadInput(f"kv unit must be pct or bytes, not {kv_unit!r}")
    if kv_col and kv_unit == "pct" and kv_pool_bytes is None:
        raise BadInput(f"{source}: column {kv_col!r} is a percentage of the KV pool; give the pool's size "
                       "(--kv-pool-gib, or --server-memory with the sweep's start-up accounting)")
    cap_col = cap_col or batch_col
    used = [batch_col, throughput_col, latency_col, cap_col] + ([kv_col] if kv_col else [])
    used = list(dict.fromkeys(used))  # the cap may be the batch column itself
    optional = [c for c in (peak_batch_col, preemptions_col) if c]
    _require(frame, used + optional, source)
    values = frame[used].apply(pd.to_numeric, errors="coerce")
    empty = values.isna().any(axis=1)
    skipped = tuple(f"{cap_col}={frame[cap_col].iloc[i]}: no value in "
                    f"{', '.join(c for c in used if pd.isna(values[c].iloc[i]))}"
                    for i in np.flatnonzero(empty.to_numpy()))
    rows = frame.loc[~empty.to_numpy()]
    vals = values.loc[~empty.to_numpy()]
    kv = None
    if kv_col:
        kv = vals[kv_col].to_numpy(dtype=np.float64)
        if kv_unit == "pct":
            pool = kv_pool_bytes if callable(kv_pool_bytes) else (lambda _cap, p=kv_pool_bytes: p)
            kv = kv / 100.0 * np.array([pool(c) for c in vals[cap_col].to_numpy(dtype=np.float64)])

    def opt(col):
        return None if not col else pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=np.float64)

    return make_curve(label, vals[batch_col], vals[throughput_col], vals[latency_col], cap=vals[cap_col],
                      kv_bytes=kv, peak_batch=opt(peak_batch_col), preemptions=opt(preemptions_col),
                      prompt_len=prompt_len, output_len=output_len, skipped=skipped)


# ---- the rule ----------------------------------------------------------------------------------
def check_epsilon(epsilon: float) -> float:
    if not (isinstance(epsilon, (int, float)) and 0.0 <= epsilon < 1.0):
        raise BadInput(f"epsilon must be in [0, 1) (0 turns the efficiency filter off), not {epsilon!r}")
    return float(epsilon)


def nearest_index(batch: np.ndarray, ref: float) -> int:
    """Index of the batch nearest `ref`; on equal distance the smaller batch (batch is sorted)."""
    return int(np.argmin(np.abs(np.asarray(batch, dtype=np.float64) - ref)))


def slo_threshold(curve: Curve, slo_ms: float | None = None, slo_factor: float | None = None,
                  ref_batch: float = 1.0) -> tuple[float, str]:
    """(SLO in ms, how it was set). Exactly one of slo_ms and slo_factor."""
    if (slo_ms is None) == (slo_factor is None):
        raise BadInput("give exactly one latency SLO: --slo-ms (absolute) or --slo-factor (times the "
                       "latency at the batch nearest --ref-batch)")
    if slo_ms is not None:
        if not slo_ms > 0:
            raise BadInput(f"--slo-ms must be positive, not {slo_ms}")
        return float(slo_ms), f"{slo_ms:g} ms"
    if not slo_factor > 0 or not ref_batch > 0:
        raise BadInput(f"--slo-factor and --ref-batch must be positive, not {slo_factor}, {ref_batch}")
    i = nearest_index(curve.batch, ref_batch)
    base = float(curve.latency_ms[i])
    return slo_factor * base, f"{slo_factor:g} x {base:.4g} ms (latency at batch {curve.batch[i]:g})"


def batch_one_throughput(curve: Curve) -> float:
    """T(1): the throughput of the run with cap 1 (a measured running batch is never exactly 1)."""
    hits = np.flatnonzero(curve.cap == 1)
    if len(hits) == 0:
        raise BadInput(f"{curve.label}: the sweep has no batch-1 run (cap = 1), so T(1), the denominator "
                       "of the efficiency filter, is unknown; measure batch 1 or pass --epsilon 0")
    return float(curve.throughput[hits[0]])


def efficiency(curve: Curve, t1: float) -> np.ndarray:
    """T(B) / (B * T(1)) per point."""
    return curve.throughput / (curve.batch * t1)


@dataclass(frozen=True)
class Choice:
    index: int
    batch: float
    cap: float
    throughput: float
    latency_ms: float
    fraction_of_best: float  # T(B_opt) / the highest throughput measured at any batch
    efficiency: float | None  # T(B_opt) / (B_opt T(1)); None when epsilon = 0 and there is no batch 1
    slo_ms: float
    slo_rule: str
    epsilon: float
    t1: float | None
    meets_slo: np.ndarray = field(repr=False)
    efficient: np.ndarray = field(repr=False)
    efficiencies: np.ndarray | None = field(repr=False)


def choose_batch(curve: Curve, slo_ms: float, epsilon: float, slo_rule: str = "") -> Choice:
    """Apply the BCA rule (module docstring). Raises BadInput when no batch qualifies."""
    epsilon = check_epsilon(epsilon)
    meets = curve.latency_ms <= slo_ms
    if not meets.any():
        i = int(np.argmin(curve.latency_ms))
        raise BadInput(f"{curve.label}: no batch meets the latency SLO of {slo_ms:.4g} ms (the lowest "
                       f"latency is {curve.latency_ms[i]:.4g} ms, at batch {curve.batch[i]:g})")
    t1 = eff = None
    efficient = np.ones_like(meets)
    if epsilon > 0:
        t1 = batch_one_throughput(curve)
        eff = efficiency(curve, t1)
        efficient = eff > epsilon
    elif (curve.cap == 1).any():
        t1 = batch_one_throughput(curve)
        eff = efficiency(curve, t1)
    ok = meets & efficient
    if not ok.any():
        raise BadInput(f"{curve.label}: no batch within the SLO of {slo_ms:.4g} ms has a throughput "
                       f"efficiency T(B)/(B T(1)) above epsilon = {epsilon:g} (within the SLO the best is "
                       f"{eff[meets].max():.3g}); lower --epsilon or relax the SLO")
    cand = np.flatnonzero(ok)
    # highest throughput; ties -> smaller batch, then smaller cap (curve is sorted by batch, cap)
    best = cand[np.lexsort((curve.cap[cand], curve.batch[cand], -curve.throughput[cand]))[0]]
    return Choice(index=int(best), batch=float(curve.batch[best]), cap=float(curve.cap[best]),
                  throughput=float(curve.throughput[best]), latency_ms=float(curve.latency_ms[best]),
                  fraction_of_best=float(curve.throughput[best] / curve.throughput.max()),
                  efficiency=None if eff is None else float(eff[best]), slo_ms=float(slo_ms),
                  slo_rule=slo_rule or f"{slo_ms:g} ms", epsilon=epsilon, t1=t1, meets_slo=meets,
                  efficient=efficient, efficiencies=eff)


# ---- KV-cache arithmetic -----------------------------------------------------------------------
def kv_pool_bytes(num_blocks: int, block_size: int, kv_bytes_per_token: int) -> int:
    """vLLM's paged KV pool: blocks x tokens per block x bytes per token (all layers, K and V)."""
    return int(num_blocks) * int(block_size) * int(kv_bytes_per_token)


def kv_bound_bytes(batch: float, prompt_len: float, output_len: float, kv_bytes_per_token: int) -> float:
    """Most KV bytes B sequences can hold: each at its full prompt + output length."""
    return float(batch) * (float(prompt_len) + float(output_len)) * kv_bytes_per_token


# ---- memory besides weights and KV ------------------------------------------------------------
@dataclass(frozen=True)
class Overhead:
    """Memory an engine needs besides weights and KV cache.

    runtime_bytes: per process, whatever the batch (CUDA context, allocator, NCCL): initial usage - weights
      in vLLM's log. in_budget_bytes: the part of it vLLM counts against gpu_memory_utilization (its
      "non_torch_memory"; the rest sits outside the budget). activations: the peak of vLLM's profiling
      forward pass, linear in max_num_seqs (its sampler holds max_num_seqs x vocabulary logits).
    """

    runtime_bytes: float
    in_budget_bytes: float
    act_bytes_at_1: float
    act_bytes_per_seq: float
    source: str

    def activation_bytes(self, cap: float) -> float:
        return self.act_bytes_at_1 + self.act_bytes_per_seq * max(float(cap) - 1.0, 0.0)

    def footprint_bytes(self, cap: float) -> float:
        return self.runtime_bytes + self.activation_bytes(cap)

    def budget_bytes(self, cap: float) -> float:
        return self.in_budget_bytes + self.activation_bytes(cap)


def fixed_overhead(nbytes: float, source: str) -> Overhead:
    """A user's or a measured number, counted whole inside the budget."""
    return Overhead(float(nbytes), float(nbytes), 0.0, 0.0, source)


@dataclass(frozen=True)
class VllmProfile:
    """vLLM's start-up memory accounting for one model and engine config (one row of server_memory.csv).

    vLLM V0 sizes the KV pool as util x total - peak torch memory (weights + activations of a dummy
    forward pass) - non-torch memory; the row gives that pool at the smallest cap and at a large one.
    """

    model: str
    sweep: str
    total_bytes: float
    util: float
    weights_bytes: float
    initial_bytes: float  # weights + runtime, before profiling
    peak_torch_bytes: float  # at cap 1
    pool_bytes_at_1: float
    pool_bytes_min: float
    cap_min: float  # the cap at which the pool was smallest
    num_gpu_blocks: int
    block_size: int

    @property
    def non_torch_bytes(self) -> float:
        """vLLM's in-budget non-torch memory, from its own identity util x total = peak + non-torch + KV."""
        return self.util * self.total_bytes - self.peak_torch_bytes - self.pool_bytes_at_1

    @property
    def overhead(self) -> Overhead:
        runtime = self.initial_bytes - self.weights_bytes
        per_seq = 0.0
        if self.cap_min > 1:
            per_seq = (self.pool_bytes_at_1 - self.pool_bytes_min) / (self.cap_min - 1)
        return Overhead(runtime_bytes=runtime, in_budget_bytes=min(max(self.non_torch_bytes, 0.0), runtime),
                        act_bytes_at_1=self.peak_torch_bytes - self.weights_bytes,
                        act_bytes_per_seq=max(per_seq, 0.0),
                        source=f"vLLM start-up accounting of {self.model} ({self.sweep} sweep)")

    def pool_bytes(self, cap: float) -> float:
        """The KV pool vLLM allocated at this cap (the activations of its dummy pass grow with it)."""
        return self.util * self.total_bytes - self.weights_bytes - self.non_torch_bytes \
            - self.overhead.activation_bytes(cap)

    def vllm_pool_bytes(self, util: float, cap: float) -> float:
        """The KV pool vLLM would allocate with this gpu_memory_utilization and cap."""
        return util * self.total_bytes - self.weights_bytes - self.non_torch_bytes \
            - self.overhead.activation_bytes(cap)


def vllm_profile(frame: pd.DataFrame, model: str, sweep: str | None, source: str) -> VllmProfile:
    """The row of a server_memory.csv for `model` (and `sweep`, needed when the model has several)."""
    _require(frame, ["model", "sweep", "weights_gb", "kv_cache_gib", "num_gpu_blocks", "block_size",
                     "total_gpu_memory_gib", "initial_memory_usage_gb", "peak_torch_memory_gib",
                     "gpu_memory_utilization", "kv_cache_gib_min", "at_max_num_seqs_min"], source)
    rows = frame[frame["model"] == model]
    if sweep is not None:
        rows = rows[rows["sweep"] == sweep]
    if len(rows) != 1:
        have = ", ".join(f"{m}/{s}" for m, s in zip(frame["model"], frame["sweep"]))
        raise BadInput(f"{source}: {len(rows)} rows for model {model!r}"
                       + (f" and sweep {sweep!r}" if sweep else "")
                       + f"; pick one with --server-memory-sweep (rows: {have})")
    r = rows.iloc[0]
    return VllmProfile(model=model, sweep=str(r["sweep"]), total_bytes=r["total_gpu_memory_gib"] * GiB,
                       util=float(r["gpu_memory_utilization"]), weights_bytes=r["weights_gb"] * GiB,
                       initial_bytes=r["initial_memory_usage_gb"] * GiB,
                       peak_torch_bytes=r["peak_torch_memory_gib"] * GiB,
                       pool_bytes_at_1=r["kv_cache_gib"] * GiB,
                       pool_bytes_min=r["kv_cache_gib_min"] * GiB, cap_min=float(r["at_max_num_seqs_min"]),
                       num_gpu_blocks=int(r["num_gpu_blocks"]), block_size=int(r["block_size"]))


@dataclass(frozen=True)
class OverheadFit:
    """vLLM's overhead averaged over measured models, for a model never run: runtime and activations at
    cap 1 as measured; activation growth per sequence scaled by the vocabulary (the sampler's logits)."""

    runtime_bytes: float
    in_budget_bytes: float
    act_bytes_at_1: float
    act_bytes_per_seq_per_vocab: float
    source: str

    def for_vocab(self, vocab: int) -> Overhead:
        return Overhead(self.runtime_bytes, self.in_budget_bytes, self.act_bytes_at_1,
                        self.act_bytes_per_seq_per_vocab * vocab, self.source)


def fit_overhead(profiles: Sequence[VllmProfile], vocab_sizes: Sequence[int]) -> OverheadFit:
    if not profiles:
        raise BadInput("the overhead fit needs at least one vLLM start-up profile")
    ov = [p.overhead for p in profiles]
    names = ", ".join(f"{p.model}/{p.sweep}" for p in profiles)
    return OverheadFit(runtime_bytes=float(np.mean([o.runtime_bytes for o in ov])),
                       in_budget_bytes=float(np.mean([o.in_budget_bytes for o in ov])),
                       act_bytes_at_1=float(np.mean([o.act_bytes_at_1 for o in ov])),
                       act_bytes_per_seq_per_vocab=float(np.mean(
                           [o.act_bytes_per_seq / v for o, v in zip(ov, vocab_sizes)])),
                       source=f"mean of vLLM start-up accounting ({names})")


# ---- the memory plan ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    kv_bytes: float
    kv_source: str
    weights_bytes: float
    overhead_bytes: float  # in the footprint: runtime + activations at the cap
    overhead_source: str
    footprint_bytes: float  # memory to allocate for one replica
    budget_bytes: float  # what vLLM counts against gpu_memory_utilization
    gpu_memory_utilization: float
    device_bytes: float
    baseline_util: float
    freed_bytes: float
    freed_pct: float  # of the device
    replicas: int

    def to_dict(self) -> dict:
        out = asdict(self)
        for k in [k for k in out if k.endswith("_bytes")]:
            out[k[:-len("_bytes")] + "_gib"] = out.pop(k) / GiB
        out["freed_gb"] = self.freed_bytes / GB
        return out


def utilization_for(budget_bytes: float, device_bytes: float) -> float:
    """gpu_memory_utilization giving at least `budget_bytes`: rounded up to 0.001."""
    return math.ceil(budget_bytes / device_bytes * 1000 - 1e-9) / 1000


def plan_memory(kv_bytes: float, weights_bytes: float, overhead: Overhead, cap: float, device_bytes: float,
                kv_source: str, baseline_util: float = VLLM_DEFAULT_UTIL) -> MemoryPlan:
    if not device_bytes > 0:
        raise BadInput(f"device memory must be positive, not {device_bytes}")
    if not 0 < baseline_util <= 1:
        raise BadInput(f"--baseline-util must be in (0, 1], not {baseline_util}")
    footprint = weights_bytes + kv_bytes + overhead.footprint_bytes(cap)
    budget = weights_bytes + kv_bytes + overhead.budget_bytes(cap)
    util = utilization_for(budget, device_bytes)
    if util > 1 or footprint > device_bytes:
        raise BadInput(f"B_opt needs {footprint / GiB:.2f} GiB, more than the device's "
                       f"{device_bytes / GiB:.2f} GiB: check --device / --device-mem-gib")
    freed = (baseline_util - util) * device_bytes
    replicas = int(baseline_util / util + 1e-9)  # engines at this utilization within the default's share
    while replicas > 0 and replicas * footprint > device_bytes:  # each also holds its out-of-budget runtime
        replicas -= 1
    return MemoryPlan(kv_bytes=kv_bytes, kv_source=kv_source, weights_bytes=weights_bytes,
                      overhead_bytes=overhead.footprint_bytes(cap), overhead_source=overhead.source,
                      footprint_bytes=footprint, budget_bytes=budget, gpu_memory_utilization=util,
                      device_bytes=device_bytes, baseline_util=baseline_util, freed_bytes=freed,
                      freed_pct=100.0 * freed / device_bytes, replicas=replicas)


# ---- the analytical curve ----------------------------------------------------------------------
def analytic_curve(label: str, shape, device, prompt_len: int, output_len: int, batches: Sequence[int],
                   dtype: str = "fp16", fits: Callable[[int], bool] | None = None) -> Curve:
    """T(B) and per-token latency predicted by the roofline (common.serving.roofline) for a decode whose
    sequences hold on average prompt + output / 2 tokens; kv_bytes is the bound at full length. Batches
    for which `fits` is False (their KV does not fit the memory) are left out and named in `skipped`."""
    from common.serving import roofline as rl

    kv_per_token = rl.kv_bytes_per_token(shape, dtype)

    context = prompt_len + output_len / 2
    keep = [b for b in batches if fits is None or fits(b)]
    skipped = tuple(f"batch {b}: its KV bound does not fit the memory" for b in batches if b not in keep)
    if not keep:
        raise BadInput(f"{label}: no batch in {list(batches)} fits the device memory")
    steps = np.array([rl.step_time(shape, b, context, device, dtype) for b in keep])
    b = np.asarray(keep, dtype=np.float64)
    kv = np.array([kv_bound_bytes(x, prompt_len, output_len, kv_per_token) for x in keep])
    return make_curve(label, b, b / steps, steps * 1e3, cap=b, kv_bytes=kv, prompt_len=float(prompt_len),
                      output_len=float(output_len), skipped=skipped)
