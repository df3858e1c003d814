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

Options that express the authors' own BCA (BCA.md): `selection` largest-within-slo (their scripts take the
largest batch within the constraints) instead of best-throughput; the batch axis `batch_col` max-running
or mean-running (the engine's measured running batch) instead of the cap; `memory` authors (KV_full from
vLLM's start-up log, KV needed = KV_full x the chosen run's peak usage, freed = the rest, as a share of the
nominal device size) instead of engine (the arithmetic above). `preset` paper-fig10 / paper-fig12 sets
all of them as the authors' Fig. 10 and Fig. 12 scripts did. B_opt needs no memory input: without one,
the plan is left out and the result says why (`memory_missing`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from common.cli import check_rules, option
from common.errors import BadInput
from common.hardware.specs import DTYPES

if TYPE_CHECKING:  # pandas is imported where a table is read, so `advise --help` stays fast
    import pandas as pd

log = logging.getLogger(__name__)
GiB = 2**30
GB = 1e9
VLLM_DEFAULT_UTIL = 0.9  # vLLM's default gpu_memory_utilization; the authors ran with it
REFERENCE = Path(__file__).resolve().parent / "reference"
AUTHORS_SWEEP = REFERENCE / "advisor_sweep.csv"
AUTHORS_MEMORY = REFERENCE / "server_memory.csv"
DEFAULT_SLO_FACTOR = 3.0  # x the latency at the batch nearest the reference batch (the authors' script)
ANALYTIC_BATCHES = "1,2,4,8,16,32,64,128,256,512,1024"
SELECTIONS = ("best-throughput", "largest-within-slo")
BATCH_AXES = {
    "cap": "the cap",
    "max-running": "the maximum running batch",
    "mean-running": "the mean running batch",
    "running": "the mean running batch",
}
MEMORY_MODES = ("engine", "authors", "none")
# the project's values of the settings a preset may set; a setting left unset (None) takes the preset's
# value, else this one
PROJECT_DEFAULTS = {
    "epsilon": 0.1,
    "selection": "best-throughput",
    "batch_col": "cap",
    "latency": "tpot",
    "memory": "engine",
}
# The authors' own BCA runs, read from their scripts at commit a9186347 (BCA.md, "Presets"):
#   Fig. 10: benchmarks/definitive_results/advisor/bopt_plots/plots.py on the background sweep
#   Fig. 12: benchmarks/definitive_results/advisor/output_length/plots/bopt_gpu.py on the advisor sweep
PRESETS = {
    "paper-fig10": {
        "sweep": str(REFERENCE / "background_sweep.csv"),
        "server_memory": str(AUTHORS_MEMORY),
        "server_memory_sweep": "background",
        "batch_col": "cap",
        "latency": "itl",
        "slo_factor": 5.0,
        "epsilon": 0.2,
        "selection": "largest-within-slo",
        "memory": "authors",
        "device": "h100-64gb",
    },
    "paper-fig12": {
        "sweep": str(AUTHORS_SWEEP),
        "server_memory": str(AUTHORS_MEMORY),
        "server_memory_sweep": "advisor",
        "batch_col": "max-running",
        "latency": "tpot",
        "slo_factor": 3.0,
        "epsilon": 0.0,
        "selection": "largest-within-slo",
        "memory": "authors",
        "device": "h100-64gb",
    },
}
PRESET_INPUTS = ("sweep", "server_memory", "server_memory_sweep")


# ---- the settings ------------------------------------------------------------------------------
# One definition of every BCA setting: `python -m papers.batching.advise` generates its flags from these
# dataclasses (common.cli), and the `bca` experiment composes SweepSettings in conf/batching/bca.yaml.
# A new field is a new flag and a new config key; its checks go in __post_init__, which runs for both.
@dataclass
class RuleSettings:
    """The rule and the memory plan: the settings of every BCA run, with a sweep or without."""

    slo_ms: Optional[float] = option(None, gt=0, group="rule", help="absolute latency SLO in ms")
    slo_factor: Optional[float] = option(
        None,
        gt=0,
        group="rule",
        help="SLO = factor x the latency at the batch nearest --ref-batch "
        f"(default {DEFAULT_SLO_FACTOR:g}, or the preset's, when --slo-ms is not given)",
    )
    ref_batch: float = option(
        32.0,
        gt=0,
        group="rule",
        help="the batch whose latency --slo-factor multiplies (the authors' BCA scripts: 32)",
    )
    epsilon: Optional[float] = option(
        None,
        ge=0,
        lt=1,
        group="rule",
        help="keep batches with T(B)/(B T(1)) "
        "> epsilon; 0 turns the filter off (default 0.1, or the preset's)",
    )
    selection: Optional[str] = option(
        None,
        choices=SELECTIONS,
        group="rule",
        help="which batch of those "
        "within the SLO and epsilon: best-throughput (ties: the smaller) or "
        "largest-within-slo (the authors' scripts) (default best-throughput, "
        "or the preset's)",
    )
    device: Optional[str] = option(
        None,
        group="memory",
        free="a common.hardware.SPECS key, looked up when the plan needs it",
        help="device spec for the memory (common.hardware.SPECS key, e.g. h100-64gb, or local)",
    )
    profile_dir: Optional[str] = option(
        None,
        group="memory",
        free="a directory, read when --device local is looked up",
        help="where python -m common.hardware.probe saved "
        "this host's profile, for --device local (default: results/hardware)",
    )
    device_mem_gib: Optional[float] = option(
        None, gt=0, group="memory", help="device memory in GiB (overrides --device's)"
    )
    baseline_util: float = option(
        VLLM_DEFAULT_UTIL,
        gt=0,
        le=1,
        group="memory",
        help="the gpu_memory_utilization the engine runs with by default (vLLM's)",
    )
    overhead_gib: Optional[float] = option(
        None,
        ge=0,
        group="memory",
        help="memory besides weights and KV, per replica (default: vLLM's start-up accounting)",
    )
    dtype: Optional[str] = option(
        None,
        choices=DTYPES,
        group="memory",
        help="weights and KV-cache dtype (default: the sweep's, else fp16)",
    )

    @classmethod
    def unresolved(cls):
        """The settings as declared, before __post_init__ fills the late defaults (None = the project's
        value or the preset's): the default of a config node, so a run's preset still applies."""
        obj = object.__new__(cls)
        for f in dataclasses.fields(cls):
            setattr(obj, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        return obj

    def __post_init__(self):
        preset = PRESETS.get(getattr(self, "preset", None) or "", {})
        for name, value in {**PROJECT_DEFAULTS, **preset}.items():
            if name in PROJECT_DEFAULTS and hasattr(self, name) and getattr(self, name) is None:
                setattr(self, name, preset.get(name, value))
        if self.slo_ms is None and self.slo_factor is None:
            self.slo_factor = preset.get("slo_factor", DEFAULT_SLO_FACTOR)
        if self.device is None and self.device_mem_gib is None and "device" in preset:
            self.device = preset["device"]
        check_epsilon(self.epsilon)
        check_rules(self)


@dataclass
class SweepSettings(RuleSettings):
    """The BCA on a measured sweep: which file and curve, which columns, then the rule and memory."""

    sweep: Optional[str] = option(
        None,
        group="input",
        positional=True,
        free="a file, read when the run starts",
        help="results.jsonl, or a CSV in the authors' layout",
    )
    preset: Optional[str] = option(
        None,
        choices=tuple(PRESETS),
        group="input",
        help="the authors' own BCA "
        "settings: paper-fig10 (background sweep, ITL, SLO 5x, epsilon 0.2) or "
        "paper-fig12 (advisor sweep, max running batch, TPOT, SLO 3x, their "
        "memory arithmetic); options given beside it win, and without a sweep "
        "file it reads the authors' (BCA.md)",
    )
    all_authors: bool = option(
        False,
        group="input",
        free="a switch",
        help="every model x output length of the authors' advisor sweep (papers/batching/reference)",
    )
    model: Optional[str] = option(
        None,
        group="which curve",
        free="a model of the sweep, checked against it",
        help="the model's curve only",
    )
    output_len: Optional[int] = option(
        None, ge=1, group="which curve", help="the authors' output length (130, 260, 390, 520)"
    )
    workload: Optional[str] = option(
        None,
        group="which curve",
        free="a workload of the sweep, checked against it",
        help="this project's workload label, e.g. fixed-161-338",
    )
    batch_col: Optional[str] = option(
        None,
        nonempty=True,
        group="columns",
        help="the batch axis: cap "
        "(max_num_seqs / batch_size), max-running (max_running_batch), "
        "mean-running (mean_running_batch; 'running' too), or a column name "
        "(default cap, or the preset's)",
    )
    latency: Optional[str] = option(
        None,
        nonempty=True,
        group="columns",
        help="itl, tpot, or a column name (ms) (default tpot, or the preset's)",
    )
    throughput_col: Optional[str] = option(
        None, nonempty=True, group="columns", help="default: total tokens/s"
    )
    kv_col: Optional[str] = option(
        None,
        nonempty=True,
        group="columns",
        help="peak KV usage column (default: the format's); 'none' uses the bound",
    )
    kv_unit: Optional[str] = option(
        None, choices=("pct", "bytes"), group="columns", help="of --kv-col (default: the format's)"
    )
    kv_pool_gib: Optional[float] = option(
        None, gt=0, group="columns", help="size of the KV pool a usage % refers to, GiB"
    )
    server_memory: Optional[str] = option(
        None,
        group="columns",
        free="a file, read when the run starts",
        help="vLLM start-up accounting (reference/server_memory.csv)",
    )
    server_memory_sweep: Optional[str] = option(
        None,
        group="columns",
        free="a row of --server-memory, checked against it",
        help="its row for this sweep: advisor or background",
    )
    kv_bytes_per_token: Optional[int] = option(
        None, ge=1, group="columns", help="for a model without a built-in config"
    )
    prompt_tokens: Optional[float] = option(
        None, gt=0, group="columns", help="for the KV bound (default: the sweep's mean)"
    )
    output_tokens: Optional[float] = option(
        None, gt=0, group="columns", help="for the KV bound (default: the sweep's mean)"
    )
    exclude_preempted: bool = option(
        False, group="columns", free="a switch", help="leave out runs that preempted"
    )
    memory: Optional[str] = option(
        None,
        choices=MEMORY_MODES,
        group="memory",
        help="the memory arithmetic: "
        "engine (vLLM's start-up accounting, gpu_memory_utilization to give it), "
        "authors (KV_full x the run's peak usage, freed share of the nominal "
        "device; their Fig. 12 script) or none (B_opt only) (default engine, or "
        "the preset's)",
    )

    def __post_init__(self):
        preset = PRESETS.get(self.preset or "", {})
        if preset and self.sweep is None and not self.all_authors:
            for name in PRESET_INPUTS:
                if getattr(self, name) is None:
                    setattr(self, name, preset[name])
        super().__post_init__()
        if self.all_authors and self.sweep is not None:
            raise BadInput("--all-authors reads the authors' sweep; give no sweep file with it")

    def inputs(self) -> SweepSettings:
        """These settings with --all-authors spelt out as the files it reads; bad input without a sweep."""
        if self.all_authors:
            return replace(
                self,
                all_authors=False,
                sweep=str(AUTHORS_SWEEP),
                server_memory=self.server_memory or str(AUTHORS_MEMORY),
                server_memory_sweep=self.server_memory_sweep or "advisor",
            )
        if self.sweep is None:
            raise BadInput("give a sweep file (results.jsonl or CSV), --all-authors, or the analytic command")
        return self


@dataclass(kw_only=True)
class AnalyticSettings(RuleSettings):
    """The BCA on the roofline's predicted curve for a model on a device (no sweep)."""

    model: str = option(
        group="model",
        free="a built-in architecture, checked by name",
        help="a built-in architecture (common.serving.models.ARCHS)",
    )
    prompt: int = option(ge=1, group="model", help="prompt tokens per request")
    output: int = option(ge=1, group="model", help="output tokens per request")
    batches: str = option(ANALYTIC_BATCHES, nonempty=True, group="model", help="batch grid, comma-separated")
    chunked_prefill: bool = option(
        False,
        group="model",
        free="a switch",
        help="prompts prefilled in "
        "chunks inside the decode steps (vLLM's --enable-chunked-prefill; off by "
        "default in the authors' vLLM, on in their advisor sweep)",
    )
    dtype: str = option("fp16", choices=DTYPES, group="memory", help="weights and KV-cache dtype")


RECORDED = (
    "preset",
    "batch_col",
    "latency",
    "throughput_col",
    "slo_ms",
    "slo_factor",
    "ref_batch",
    "epsilon",
    "selection",
    "memory",
    "kv_col",
    "kv_pool_gib",
    "server_memory",
    "server_memory_sweep",
    "device",
    "profile_dir",
    "device_mem_gib",
    "baseline_util",
    "overhead_gib",
    "exclude_preempted",
    "prompt",
    "output",
    "batches",
    "chunked_prefill",
    "dtype",
)
PATHS = ("server_memory", "profile_dir")


def settings_record(s: RuleSettings) -> dict:
    """The settings a result was computed with, as saved beside it (paths as typed in the repository)."""
    return {
        k: (shown(v) if k in PATHS else v)
        for k in RECORDED
        if (v := getattr(s, k, None)) is not None and v is not False
    }


def shown(path: str | Path) -> str:
    """A path as a user in the repository would type it."""
    from common.repo import REPO_ROOT

    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


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
    extra: dict = field(default_factory=dict)  # column -> its values per point, for the memory plan

    def __post_init__(self):
        n = len(self.batch)
        arrays = {
            "cap": self.cap,
            "throughput": self.throughput,
            "latency_ms": self.latency_ms,
            "kv_bytes": self.kv_bytes,
            "peak_batch": self.peak_batch,
            "preemptions": self.preemptions,
        }
        for name, arr in arrays.items():
            if arr is not None and len(arr) != n:
                raise ValueError(f"{self.label}: {name} has {len(arr)} points, batch has {n}")
        if n == 0:
            raise BadInput(
                f"{self.label}: the sweep has no usable point"
                + (f" ({'; '.join(self.skipped)})" if self.skipped else "")
            )
        if (np.asarray(self.batch) <= 0).any() or (np.asarray(self.throughput) <= 0).any():
            raise BadInput(f"{self.label}: batch sizes and throughputs must be positive")


def make_curve(label: str, batch, throughput, latency_ms, cap=None, **kw) -> Curve:
    """A Curve from plain sequences, sorted by (batch, cap); cap defaults to the batch itself."""
    b = np.asarray(batch, dtype=np.float64)
    c = b.copy() if cap is None else np.asarray(cap, dtype=np.float64)
    order = np.lexsort((c, b))
    arrays = {
        k: (None if v is None else np.asarray(v, dtype=np.float64)[order])
        for k, v in kw.items()
        if k in ("kv_bytes", "peak_batch", "preemptions")
    }
    if kw.get("extra"):
        kw["extra"] = {
            k: (None if v is None else np.asarray(v, dtype=np.float64)[order]) for k, v in kw["extra"].items()
        }
    rest = {k: v for k, v in kw.items() if k not in arrays}
    return Curve(
        label,
        b[order],
        c[order],
        np.asarray(throughput, dtype=np.float64)[order],
        np.asarray(latency_ms, dtype=np.float64)[order],
        **arrays,
        **rest,
    )


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInput(
            f"{source}: no column {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(str, frame.columns))}"
        )


def curve_from_frame(
    frame: pd.DataFrame,
    *,
    label: str,
    source: str,
    batch_col: str,
    throughput_col: str,
    latency_col: str,
    cap_col: str | None = None,
    kv_col: str | None = None,
    kv_unit: str = "pct",
    kv_pool_bytes: float | Callable[[float], float] | None = None,
    peak_batch_col: str | None = None,
    preemptions_col: str | None = None,
    prompt_len: float | None = None,
    output_len: float | None = None,
    extra_cols: Sequence[str] = (),
) -> Curve:
    """One curve from a sweep table (one row per run). Rows with an empty metric are skipped, each named
    in `skipped`, never read as zero: a run that produced nothing says nothing about its batch size.

    kv_unit "pct": kv_col is the peak % of the KV pool in use (the authors' max_kv_cache_usage_pct) and
    kv_pool_bytes (bytes, or a function of the cap: vLLM's pool shrinks as the cap grows) converts it;
    "bytes": kv_col holds bytes already (this project's kv_cache_bytes).
    """
    import pandas as pd

    if kv_unit not in ("pct", "bytes"):
        raise BadInput(f"kv unit must be pct or bytes, not {kv_unit!r}")
    if kv_col and kv_unit == "pct" and kv_pool_bytes is None:
        raise BadInput(
            f"{source}: column {kv_col!r} is a percentage of the KV pool; give the pool's size "
            "(--kv-pool-gib, or --server-memory with the sweep's start-up accounting)"
        )
    cap_col = cap_col or batch_col
    used = [batch_col, throughput_col, latency_col, cap_col] + ([kv_col] if kv_col else [])
    used = list(dict.fromkeys(used))  # the cap may be the batch column itself
    optional = [c for c in (peak_batch_col, preemptions_col, *extra_cols) if c]
    _require(frame, used + optional, source)
    values = frame[used].apply(pd.to_numeric, errors="coerce")
    empty = values.isna().any(axis=1)
    skipped = tuple(
        f"{cap_col}={frame[cap_col].iloc[i]}: no value in "
        f"{', '.join(c for c in used if pd.isna(values[c].iloc[i]))}"
        for i in np.flatnonzero(empty.to_numpy())
    )
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

    return make_curve(
        label,
        vals[batch_col],
        vals[throughput_col],
        vals[latency_col],
        cap=vals[cap_col],
        kv_bytes=kv,
        peak_batch=opt(peak_batch_col),
        preemptions=opt(preemptions_col),
        prompt_len=prompt_len,
        output_len=output_len,
        skipped=skipped,
        extra={c: opt(c) for c in extra_cols},
    )


# ---- the rule ----------------------------------------------------------------------------------
def check_epsilon(epsilon: float) -> float:
    if not (isinstance(epsilon, (int, float)) and 0.0 <= epsilon < 1.0):
        raise BadInput(f"epsilon must be in [0, 1) (0 turns the efficiency filter off), not {epsilon!r}")
    return float(epsilon)


def nearest_index(batch: np.ndarray, ref: float) -> int:
    """Index of the batch nearest `ref`; on equal distance the smaller batch (batch is sorted)."""
    return int(np.argmin(np.abs(np.asarray(batch, dtype=np.float64) - ref)))


def slo_threshold(
    curve: Curve, slo_ms: float | None = None, slo_factor: float | None = None, ref_batch: float = 1.0
) -> tuple[float, str]:
    """(SLO in ms, how it was set). Exactly one of slo_ms and slo_factor."""
    if (slo_ms is None) == (slo_factor is None):
        raise BadInput(
            "give exactly one latency SLO: --slo-ms (absolute) or --slo-factor (times the "
            "latency at the batch nearest --ref-batch)"
        )
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
        raise BadInput(
            f"{curve.label}: the sweep has no batch-1 run (cap = 1), so T(1), the denominator "
            "of the efficiency filter, is unknown; measure batch 1 or pass --epsilon 0"
        )
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


def choose_batch(
    curve: Curve, slo_ms: float, epsilon: float, slo_rule: str = "", selection: str = "best-throughput"
) -> Choice:
    """Apply the BCA rule (module docstring): of the batches within the SLO and above epsilon, the highest
    throughput (best-throughput) or the largest batch (largest-within-slo, the authors' scripts); ties go to
    the smaller batch, then the smaller cap. Raises BadInput when no batch qualifies."""
    epsilon = check_epsilon(epsilon)
    if selection not in SELECTIONS:
        raise BadInput(f"selection: {selection!r} is not one of {', '.join(SELECTIONS)}")
    meets = curve.latency_ms <= slo_ms
    if not meets.any():
        i = int(np.argmin(curve.latency_ms))
        raise BadInput(
            f"{curve.label}: no batch meets the latency SLO of {slo_ms:.4g} ms (the lowest "
            f"latency is {curve.latency_ms[i]:.4g} ms, at batch {curve.batch[i]:g})"
        )
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
        raise BadInput(
            f"{curve.label}: no batch within the SLO of {slo_ms:.4g} ms has a throughput "
            f"efficiency T(B)/(B T(1)) above epsilon = {epsilon:g} (within the SLO the best is "
            f"{eff[meets].max():.3g}); lower --epsilon or relax the SLO"
        )
    cand = np.flatnonzero(ok)
    if selection == "largest-within-slo":  # the largest batch; ties -> the smaller cap
        best = cand[np.lexsort((curve.cap[cand], -curve.batch[cand]))[0]]
    else:  # highest throughput; ties -> smaller batch, then smaller cap (curve is sorted by batch, cap)
        best = cand[np.lexsort((curve.cap[cand], curve.batch[cand], -curve.throughput[cand]))[0]]
    return Choice(
        index=int(best),
        batch=float(curve.batch[best]),
        cap=float(curve.cap[best]),
        throughput=float(curve.throughput[best]),
        latency_ms=float(curve.latency_ms[best]),
        fraction_of_best=float(curve.throughput[best] / curve.throughput.max()),
        efficiency=None if eff is None else float(eff[best]),
        slo_ms=float(slo_ms),
        slo_rule=slo_rule or f"{slo_ms:g} ms",
        epsilon=epsilon,
        t1=t1,
        meets_slo=meets,
        efficient=efficient,
        efficiencies=eff,
    )


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
        return Overhead(
            runtime_bytes=runtime,
            in_budget_bytes=min(max(self.non_torch_bytes, 0.0), runtime),
            act_bytes_at_1=self.peak_torch_bytes - self.weights_bytes,
            act_bytes_per_seq=max(per_seq, 0.0),
            source=f"vLLM start-up accounting of {self.model} ({self.sweep} sweep)",
        )

    def pool_bytes(self, cap: float) -> float:
        """The KV pool vLLM allocated at this cap (the activations of its dummy pass grow with it)."""
        return (
            self.util * self.total_bytes
            - self.weights_bytes
            - self.non_torch_bytes
            - self.overhead.activation_bytes(cap)
        )

    def vllm_pool_bytes(self, util: float, cap: float) -> float:
        """The KV pool vLLM would allocate with this gpu_memory_utilization and cap."""
        return (
            util * self.total_bytes
            - self.weights_bytes
            - self.non_torch_bytes
            - self.overhead.activation_bytes(cap)
        )


def vllm_profile(frame: pd.DataFrame, model: str, sweep: str | None, source: str) -> VllmProfile:
    """The row of a server_memory.csv for `model` (and `sweep`, needed when the model has several)."""
    _require(
        frame,
        [
            "model",
            "sweep",
            "weights_gb",
            "kv_cache_gib",
            "num_gpu_blocks",
            "block_size",
            "total_gpu_memory_gib",
            "initial_memory_usage_gb",
            "peak_torch_memory_gib",
            "gpu_memory_utilization",
            "kv_cache_gib_min",
            "at_max_num_seqs_min",
        ],
        source,
    )
    rows = frame[frame["model"] == model]
    if sweep is not None:
        rows = rows[rows["sweep"] == sweep]
    if len(rows) != 1:
        have = ", ".join(f"{m}/{s}" for m, s in zip(frame["model"], frame["sweep"]))
        raise BadInput(
            f"{source}: {len(rows)} rows for model {model!r}"
            + (f" and sweep {sweep!r}" if sweep else "")
            + f"; pick one with --server-memory-sweep (rows: {have})"
        )
    r = rows.iloc[0]
    return VllmProfile(
        model=model,
        sweep=str(r["sweep"]),
        total_bytes=r["total_gpu_memory_gib"] * GiB,
        util=float(r["gpu_memory_utilization"]),
        weights_bytes=r["weights_gb"] * GiB,
        initial_bytes=r["initial_memory_usage_gb"] * GiB,
        peak_torch_bytes=r["peak_torch_memory_gib"] * GiB,
        pool_bytes_at_1=r["kv_cache_gib"] * GiB,
        pool_bytes_min=r["kv_cache_gib_min"] * GiB,
        cap_min=float(r["at_max_num_seqs_min"]),
        num_gpu_blocks=int(r["num_gpu_blocks"]),
        block_size=int(r["block_size"]),
    )


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
        return Overhead(
            self.runtime_bytes,
            self.in_budget_bytes,
            self.act_bytes_at_1,
            self.act_bytes_per_seq_per_vocab * vocab,
            self.source,
        )


def fit_overhead(profiles: Sequence[VllmProfile], vocab_sizes: Sequence[int]) -> OverheadFit:
    if not profiles:
        raise BadInput("the overhead fit needs at least one vLLM start-up profile")
    ov = [p.overhead for p in profiles]
    names = ", ".join(f"{p.model}/{p.sweep}" for p in profiles)
    return OverheadFit(
        runtime_bytes=float(np.mean([o.runtime_bytes for o in ov])),
        in_budget_bytes=float(np.mean([o.in_budget_bytes for o in ov])),
        act_bytes_at_1=float(np.mean([o.act_bytes_at_1 for o in ov])),
        act_bytes_per_seq_per_vocab=float(
            np.mean([o.act_bytes_per_seq / v for o, v in zip(ov, vocab_sizes)])
        ),
        source=f"mean of vLLM start-up accounting ({names})",
    )


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
    method: str = "engine"  # engine: vLLM's start-up accounting; authors: their Fig. 12 arithmetic
    kv_full_bytes: float | None = None  # authors: the pool vLLM allocated by default (KV_full)

    def to_dict(self) -> dict:
        out = asdict(self)
        for k in [k for k in out if k.endswith("_bytes")]:
            value = out.pop(k)
            out[k[: -len("_bytes")] + "_gib"] = None if value is None else value / GiB
        out["freed_gb"] = self.freed_bytes / GB
        return out


def utilization_for(budget_bytes: float, device_bytes: float) -> float:
    """gpu_memory_utilization giving at least `budget_bytes`: rounded up to 0.001."""
    return math.ceil(budget_bytes / device_bytes * 1000 - 1e-9) / 1000


def plan_memory(
    kv_bytes: float,
    weights_bytes: float,
    overhead: Overhead,
    cap: float,
    device_bytes: float,
    kv_source: str,
    baseline_util: float = VLLM_DEFAULT_UTIL,
) -> MemoryPlan:
    if not device_bytes > 0:
        raise BadInput(f"device memory must be positive, not {device_bytes}")
    if not 0 < baseline_util <= 1:
        raise BadInput(f"--baseline-util must be in (0, 1], not {baseline_util}")
    footprint = weights_bytes + kv_bytes + overhead.footprint_bytes(cap)
    budget = weights_bytes + kv_bytes + overhead.budget_bytes(cap)
    util = utilization_for(budget, device_bytes)
    if util > 1 or footprint > device_bytes:
        raise BadInput(
            f"B_opt needs {footprint / GiB:.2f} GiB, more than the device's "
            f"{device_bytes / GiB:.2f} GiB: check --device / --device-mem-gib"
        )
    freed = (baseline_util - util) * device_bytes
    replicas = int(baseline_util / util + 1e-9)  # engines at this utilization within the default's share
    while replicas > 0 and replicas * footprint > device_bytes:  # each also holds its out-of-budget runtime
        replicas -= 1
    return MemoryPlan(
        kv_bytes=kv_bytes,
        kv_source=kv_source,
        weights_bytes=weights_bytes,
        overhead_bytes=overhead.footprint_bytes(cap),
        overhead_source=overhead.source,
        footprint_bytes=footprint,
        budget_bytes=budget,
        gpu_memory_utilization=util,
        device_bytes=device_bytes,
        baseline_util=baseline_util,
        freed_bytes=freed,
        freed_pct=100.0 * freed / device_bytes,
        replicas=replicas,
    )


# ---- the analytical curve ----------------------------------------------------------------------
def analytic_curve(
    label: str,
    shape,
    step_model,
    prompt_len: int,
    output_len: int,
    batches: Sequence[int],
    fits: Callable[[int], bool] | None = None,
    chunked: bool = False,
) -> Curve:
    """T(B) and per-token latency predicted by the step model (common.serving.step_model) for continuous
    batching at a full batch of B: the sequences hold on average prompt + output / 2 tokens, and as each
    finishes a new request's prompt is prefilled (B / output prompts per decode step, in prefill steps of
    their own, or riding in the decode steps with chunked prefill). T is total tokens/s, as in the measured
    tables; kv_bytes is the bound at full length. Batches for which `fits` is False (their KV does not fit
    the memory) are left out and named in `skipped`."""
    kv_per_token = _roofline().kv_bytes_per_token(shape, step_model.dtype)
    context = prompt_len + output_len / 2
    keep = [b for b in batches if fits is None or fits(b)]
    skipped = tuple(f"batch {b}: its KV bound does not fit the memory" for b in batches if b not in keep)
    if not keep:
        raise BadInput(f"{label}: no batch in {list(batches)} fits the device memory")
    steps = np.array(
        [step_model.step_time(shape, b, context, b / output_len, prompt_len, chunked) for b in keep]
    )
    b = np.asarray(keep, dtype=np.float64)
    kv = np.array([kv_bound_bytes(x, prompt_len, output_len, kv_per_token) for x in keep])
    total_per_output = (prompt_len + output_len) / output_len
    return make_curve(
        label,
        b,
        b / steps * total_per_output,
        steps * 1e3,
        cap=b,
        kv_bytes=kv,
        prompt_len=float(prompt_len),
        output_len=float(output_len),
        skipped=skipped,
    )


def _roofline():
    from common.serving import roofline

    return roofline


def analytic_step_model(model: str, device: str, spec, dtype: str):
    """(the step model for `model` on `spec`, how it was obtained). Fitted on the authors' H100 runs
    (papers.batching.calibrate): calibrated where the model is one they measured on their device,
    transferred to another model by its shape and to another device by its bandwidth and FLOP/s."""
    from papers.batching.calibrate import DEVICE, MODELS, authors_step_model

    base = authors_step_model()
    fitted = f"fitted on the authors' {DEVICE} runs of {', '.join(MODELS)} (offline and background sweeps)"
    if device == DEVICE:
        step = base if dtype == base.dtype else base.on_device(spec, dtype)
        how = "calibrated" if model in MODELS else "transferred to this model"
    else:
        step = base.on_device(spec, dtype)
        how = "transferred to this device" + ("" if model in MODELS else " and model")
    return step, f"step model {how}: {fitted}"


def latency_check(model: str, shape, step_model, prompt: int, output: int, device: str) -> dict:
    """The analytic latency against the measured mode: the authors' advisor sweep (mean TPOT per cap) where
    it has this model, lengths and device; predicted with the sweep's scheduling (chunked prefill, as the
    authors ran it; the step model was never fitted on this sweep) at each run's mean running batch (the
    model's error) and at the cap (the analytic mode's full-batch assumption). Runs that preempted are left
    out."""
    from papers.batching.calibrate import DEVICE

    if device != DEVICE:
        return {"missing_reason": f"the measured mode here is the authors' advisor sweep on {DEVICE}"}
    frame = read_csv(AUTHORS_SWEEP)
    rows = frame[
        (frame["model"] == model) & (frame["output_len"] == output) & (frame["num_preemptions"] == 0)
    ]
    rows = rows.dropna(subset=["mean_tpot_ms", "mean_running_batch"])
    if rows.empty:
        return {"missing_reason": f"the authors' advisor sweep has no {model} run with output {output}"}
    sweep_prompt = float((rows["total_input_tokens"] / rows["num_prompts"]).median())
    if abs(sweep_prompt - prompt) > 1:
        return {
            "missing_reason": f"the authors' advisor sweep has {sweep_prompt:g}-token prompts for "
            f"{model}, not {prompt}"
        }
    context = prompt + output / 2
    points = []
    for r in rows.sort_values("max_num_seqs").itertuples():
        at_running = (
            step_model.step_time(
                shape, r.mean_running_batch, context, r.mean_running_batch / output, prompt, chunked=True
            )
            * 1e3
        )
        at_cap = (
            step_model.step_time(
                shape, r.max_num_seqs, context, r.max_num_seqs / output, prompt, chunked=True
            )
            * 1e3
        )
        points.append(
            {
                "cap": int(r.max_num_seqs),
                "running_batch": float(r.mean_running_batch),
                "measured_ms": float(r.mean_tpot_ms),
                "predicted_at_running_ms": at_running,
                "predicted_at_cap_ms": at_cap,
            }
        )
    measured = [p["measured_ms"] for p in points]
    mape = _roofline().mape
    return {
        "against": f"the authors' advisor sweep ({model}, output {output}, {device}): mean TPOT per cap",
        "n": len(points),
        "mape_at_running_batch_pct": mape([p["predicted_at_running_ms"] for p in points], measured),
        "mape_at_cap_pct": mape([p["predicted_at_cap_ms"] for p in points], measured),
        "points": points,
    }


# ---- the BCA on a sweep ------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where a sweep format keeps each quantity."""

    name: str
    group_cols: tuple[str, ...]  # one curve per distinct value of these (those present)
    cap: str
    running: str | None
    throughput: str
    latency: dict[str, str]
    kv_col: str
    kv_unit: str
    peak_batch: str | None
    preemptions: str | None
    input_tokens: str
    output_tokens: str
    requests: str


AUTHORS = Layout(
    "authors",
    ("model", "output_len"),
    cap="max_num_seqs",
    running="mean_running_batch",
    throughput="total_token_throughput_tok_s",
    latency={"itl": "mean_itl_ms", "tpot": "mean_tpot_ms"},
    kv_col="max_kv_cache_usage_pct",
    kv_unit="pct",
    peak_batch="max_running_batch",
    preemptions="num_preemptions",
    input_tokens="total_input_tokens",
    output_tokens="total_output_tokens",
    requests="num_prompts",
)
PROJECT = Layout(
    "project",
    ("model", "workload", "engine", "engine_options", "dtype", "device"),
    cap="batch_size",
    running=None,
    throughput="total_throughput_tok_s",
    latency={"itl": "itl_ms_mean", "tpot": "tpot_ms_mean"},
    kv_col="kv_cache_bytes",
    kv_unit="bytes",
    peak_batch=None,
    preemptions=None,
    input_tokens="input_tokens",
    output_tokens="output_tokens",
    requests="n_requests",
)


def read_sweep(path: Path) -> tuple[pd.DataFrame, Layout]:
    """A results.jsonl (failed cells kept, to be reported as skipped) or a CSV in the authors' layout."""
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"{path}: no such sweep file")
    if path.suffix == ".jsonl":
        from common.results import ResultStore, ResultStoreError

        try:
            frame = ResultStore(path).load(status=None)
        except ResultStoreError as err:
            raise BadInput(str(err)) from None
        if frame.empty:
            raise BadInput(f"{path}: the result store has no rows")
        return frame, PROJECT
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not a readable CSV ({err})") from None
    return frame, (
        PROJECT if "batch_size" in frame.columns and "max_num_seqs" not in frame.columns else AUTHORS
    )


def read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    return pd.read_csv(path)


def _groups(frame: pd.DataFrame, layout: Layout, s: SweepSettings) -> list[tuple[str, pd.DataFrame]]:
    for col, value in (("model", s.model), ("output_len", s.output_len), ("workload", s.workload)):
        if value is None:
            continue
        if col not in frame.columns:
            raise BadInput(f"{s.sweep}: --{col.replace('_', '-')} given but the sweep has no {col!r} column")
        keep = frame[col].astype(str) == str(value)
        if not keep.any():
            raise BadInput(
                f"{s.sweep}: no rows with {col} = {value} (it has "
                f"{', '.join(map(str, frame[col].drop_duplicates()))})"
            )
        frame = frame[keep]
    cols = [c for c in layout.group_cols if c in frame.columns]
    if not cols:
        return [(Path(s.sweep).stem, frame)]
    return [
        (" ".join(str(v) for v in (key if isinstance(key, tuple) else (key,)) if str(v)), g)
        for key, g in frame.groupby(cols, sort=False)
    ]


def _column(choice: str, aliases: dict[str, str | None], what: str) -> str:
    col = aliases.get(choice, choice)
    if col is None:
        raise BadInput(f"--{what} {choice}: this sweep format has no such column")
    return col


def _mean_length(group: pd.DataFrame, layout: Layout, col: str) -> float | None:
    import pandas as pd

    if col not in group.columns or layout.requests not in group.columns:
        return None
    per = pd.to_numeric(group[col], errors="coerce") / pd.to_numeric(group[layout.requests], errors="coerce")
    per = per.dropna()
    return float(per.median()) if len(per) else None


def _kv_per_token(model: str, dtype: str, given: int | None) -> int | None:
    """KV bytes per token from the model's config (common.serving.roofline); None for an unknown model."""
    if given:
        return int(given)
    from common.serving import roofline as rl
    from common.serving.models import ModelUnavailable

    try:
        return rl.kv_bytes_per_token(rl.model_shape(model), dtype)
    except (ModelUnavailable, KeyError, ValueError) as err:
        log.warning("no KV bytes per token for %s (%s): the KV bound is unavailable", model, err)
        return None


def _weights_bytes(model: str, group: pd.DataFrame, dtype: str, profile: VllmProfile | None) -> float:
    if profile is not None:
        return profile.weights_bytes
    from common.serving import roofline as rl

    if "n_params" in group.columns and group["n_params"].notna().any():
        n_params = float(group["n_params"].dropna().iloc[0])
    else:
        try:
            n_params = rl.model_shape(model).n_params
        except Exception as err:  # noqa: BLE001 - any failure to build the config is the user's to fix
            raise MemoryInputMissing(
                f"model {model!r}: cannot count its weights ({err}); give --server-memory"
            ) from None
    return n_params * rl.DTYPE_BYTES[dtype]


def _dtype(group: pd.DataFrame, s: SweepSettings) -> str:
    if s.dtype:
        return s.dtype
    for col in ("precision", "dtype"):
        if col in group.columns and group[col].notna().any():
            return str(group[col].dropna().iloc[0])
    return "fp16"  # the authors' runs (server_memory.csv: float16)


class MemoryInputMissing(BadInput):
    """The memory plan lacks an input (a pool size, the device): B_opt stands, the plan is left out."""


def axis_column(choice: str, layout: Layout) -> str:
    """The column of a batch axis (cap, max-running, mean-running/running) or a column named as is."""
    aliases = {
        "cap": layout.cap,
        "running": layout.running,
        "mean-running": layout.running,
        "max-running": layout.peak_batch,
    }
    return _column(choice, aliases, "batch-col")


def needed_columns(layout: Layout, s: SweepSettings) -> list[str]:
    """The columns the rule reads: cap, batch axis, throughput, latency (in that order, once each)."""
    cols = [
        layout.cap,
        axis_column(s.batch_col, layout),
        s.throughput_col or layout.throughput,
        _column(s.latency, layout.latency, "latency"),
    ]
    return list(dict.fromkeys(cols))


def check_sweep(frame: pd.DataFrame, layout: Layout, s: SweepSettings, source: str) -> None:
    """Bad input, in one line naming the column or the value, unless the table can be read as a sweep:
    the columns the rule needs are there, no two rows are the same run, latencies and throughputs are not
    negative, KV usage lies in [0, 100] %."""
    import pandas as pd

    needed = needed_columns(layout, s)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BadInput(
            f"{source}: no column {', '.join(map(repr, missing))} (the rule reads "
            f"{', '.join(needed)} in the {layout.name} layout); it has "
            f"{', '.join(map(str, frame.columns))}"
        )
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    key = [c for c in layout.group_cols if c in ok.columns] + [layout.cap]
    dup = ok.duplicated(key, keep=False)
    if dup.any():
        first = ok[dup].iloc[0]
        where = ", ".join(f"{c}={first[c]}" for c in key)
        times = int((ok[key] == first[key]).all(axis=1).sum())
        raise BadInput(f"{source}: duplicate rows: {where} appears {times} times (one row per run)")

    def where(i) -> str:
        row = ok.loc[i]
        return ", ".join(f"{c}={row[c]}" for c in key)

    latencies = set(layout.latency.values()) | {_column(s.latency, layout.latency, "latency")}
    for col in [c for c in ok.columns if c in latencies or c == (s.throughput_col or layout.throughput)]:
        values = pd.to_numeric(ok[col], errors="coerce")
        bad = values[values < 0]
        if len(bad):
            raise BadInput(
                f"{source}: {col} = {bad.iloc[0]:g} at {where(bad.index[0])}: "
                f"{'latencies' if col in latencies else 'throughputs'} cannot be negative"
            )
    kv_col = None if s.kv_col == "none" else (s.kv_col or layout.kv_col)
    kv_unit = s.kv_unit or (layout.kv_unit if kv_col == layout.kv_col else "bytes")
    if kv_col and kv_col in ok.columns:
        values = pd.to_numeric(ok[kv_col], errors="coerce")
        bad = values[(values < 0) | ((values > 100) if kv_unit == "pct" else False)]
        if len(bad):
            rng = "in [0, 100] % of the KV pool" if kv_unit == "pct" else "not negative"
            raise BadInput(
                f"{source}: {kv_col} = {bad.iloc[0]:g} at {where(bad.index[0])}: KV usage must be {rng}"
            )


def authors_plan(usage_pct: float, profile: VllmProfile, nominal_bytes: float) -> MemoryPlan:
    """The authors' Fig. 12 arithmetic (bopt_gpu.py): KV_full is the pool vLLM logged at start-up (its
    kv_cache_gib), the KV that B_opt needs is KV_full x the chosen run's peak usage, the rest of KV_full is
    freed, as a share of the nominal device size (their "64 GB": GiB values divided by 64, quirk 8).
    gpu_memory_utilization is what shrinks vLLM's pool by the freed memory (util x total seen - freed)."""
    if not 0 <= usage_pct <= 100:
        raise BadInput(f"KV usage {usage_pct:g} % is outside [0, 100]")
    kv_full = profile.pool_bytes_at_1
    kv = kv_full * usage_pct / 100.0
    freed = kv_full - kv
    total = profile.total_bytes
    util = utilization_for(profile.util * total - freed, total)
    runtime = profile.initial_bytes - profile.weights_bytes
    overhead = runtime + (profile.peak_torch_bytes - profile.weights_bytes)  # + activations at cap 1
    footprint = profile.weights_bytes + kv + overhead
    replicas = int(profile.util / util + 1e-9) if util > 0 else 0
    while replicas > 0 and replicas * footprint > total:
        replicas -= 1
    return MemoryPlan(
        kv_bytes=kv,
        kv_source=f"authors: KV_full {kv_full / GiB:.2f} GiB x peak usage {usage_pct:.4g} %",
        weights_bytes=profile.weights_bytes,
        overhead_bytes=overhead,
        overhead_source=f"vLLM start-up log of {profile.model} ({profile.sweep} sweep)",
        footprint_bytes=footprint,
        budget_bytes=util * total,
        gpu_memory_utilization=util,
        device_bytes=nominal_bytes,
        baseline_util=profile.util,
        freed_bytes=freed,
        freed_pct=100.0 * freed / nominal_bytes,
        replicas=replicas,
        method="authors",
        kv_full_bytes=kv_full,
    )


def advise_group(label: str, group: pd.DataFrame, layout: Layout, s: SweepSettings) -> dict:
    """The BCA on one curve of a sweep: B_opt, its memory plan (or why there is none), and every point with
    its verdict."""
    import pandas as pd

    source = str(s.sweep)
    model = str(group["model"].iloc[0]) if "model" in group.columns else (s.model or label)
    output_len = _curve_keys(group)["output_len"]
    dtype = _dtype(group, s)
    ok_rows = group
    skipped: list[str] = []
    if "status" in group.columns:
        failed = group["status"] != "ok"
        skipped += [
            f"{layout.cap}={r[layout.cap]}: failed ({r.get('error')})" for _, r in group[failed].iterrows()
        ]
        ok_rows = group[~failed]
    measured = ok_rows  # every run that produced a result, for "fraction of the best measured"
    if s.exclude_preempted and layout.preemptions and layout.preemptions in ok_rows.columns:
        pre = pd.to_numeric(ok_rows[layout.preemptions], errors="coerce") > 0
        skipped += [
            f"{layout.cap}={c}: preempted (--exclude-preempted)" for c in ok_rows.loc[pre, layout.cap]
        ]
        ok_rows = ok_rows[~pre]

    profile = None
    if s.server_memory and s.memory != "none":
        profile = vllm_profile(
            read_csv(Path(s.server_memory)), model, s.server_memory_sweep, str(Path(s.server_memory))
        )
    kv_col = None if s.kv_col == "none" else (s.kv_col or layout.kv_col)
    kv_unit = s.kv_unit or (layout.kv_unit if kv_col == layout.kv_col else "bytes")
    missing = "memory: none (B_opt only)" if s.memory == "none" else None
    if kv_col and kv_col not in group.columns:
        if s.kv_col:  # asked for by name: a column the user expects
            raise BadInput(
                f"{source}: no column {s.kv_col!r} (--kv-col); it has {', '.join(map(str, group.columns))}"
            )
        missing = missing or f"the sweep has no {kv_col} column (the KV cache's peak)"
        kv_col = None
    pool = None
    if kv_col and kv_unit == "pct":
        pool = s.kv_pool_gib * GiB if s.kv_pool_gib else (profile.pool_bytes if profile else None)
        if pool is None:
            missing = missing or (
                f"{kv_col} is a % of the KV pool and the pool's size is not given "
                "(--server-memory with its sweep row, or --kv-pool-gib)"
            )
    throughput_col = s.throughput_col or layout.throughput
    usage_col = kv_col if (kv_col and kv_unit == "pct") else None
    curve = curve_from_frame(
        ok_rows,
        label=label,
        source=source,
        batch_col=axis_column(s.batch_col, layout),
        throughput_col=throughput_col,
        latency_col=_column(s.latency, layout.latency, "latency"),
        cap_col=layout.cap,
        kv_col=kv_col if (kv_col and (pool is not None or kv_unit != "pct")) else None,
        kv_unit=kv_unit,
        kv_pool_bytes=pool,
        peak_batch_col=layout.peak_batch if layout.peak_batch in group.columns else None,
        preemptions_col=layout.preemptions if layout.preemptions in group.columns else None,
        prompt_len=s.prompt_tokens or _mean_length(ok_rows, layout, layout.input_tokens),
        output_len=s.output_tokens or _mean_length(ok_rows, layout, layout.output_tokens),
        extra_cols=[usage_col] if usage_col and usage_col in ok_rows.columns else (),
    )
    curve = replace(curve, skipped=tuple(skipped) + curve.skipped)
    warnings = [f"skipped {x}" for x in curve.skipped]

    slo, rule = slo_threshold(curve, s.slo_ms, s.slo_factor, s.ref_batch)
    choice = choose_batch(curve, slo, s.epsilon, rule, s.selection)
    i = choice.index

    kv_per_token = _kv_per_token(model, dtype, s.kv_bytes_per_token)
    peak = curve.peak_batch[i] if curve.peak_batch is not None else curve.batch[i]
    bound = None
    if kv_per_token and curve.prompt_len is not None and curve.output_len is not None:
        bound = kv_bound_bytes(np.ceil(peak), curve.prompt_len, curve.output_len, kv_per_token)

    plan = None
    if missing is None:
        try:
            if s.memory == "authors":
                plan = _authors_plan_for(s, profile, curve, i, usage_col)
            else:
                plan = _engine_plan(s, profile, ok_rows, curve, i, model, dtype, bound, kv_col)
        except MemoryInputMissing as err:
            missing = str(err)
    if missing and s.memory != "none":
        warnings.append(f"no memory plan: {missing}")

    if curve.preemptions is not None and curve.preemptions[i] > 0:
        warnings.append(
            f"the B_opt run was preempted {curve.preemptions[i]:g} times: its KV pool was full, "
            "so the KV it needs is at least what was measured"
        )
    for w in warnings:
        log.warning("%s: %s", label, w)
    best = pd.to_numeric(measured[throughput_col], errors="coerce").max()
    return {
        "label": label,
        "model": model,
        "output_len": output_len,
        "dtype": dtype,
        "cap_column": layout.cap,
        **_choice_dict(choice, curve, float(best)),
        "kv_measured_gib": None if curve.kv_bytes is None else float(curve.kv_bytes[i]) / GiB,
        "kv_bound_gib": None if bound is None else bound / GiB,
        "kv_bytes_per_token": kv_per_token,
        "prompt_tokens": curve.prompt_len,
        "output_tokens": curve.output_len,
        "memory": None if plan is None else plan.to_dict(),
        "memory_missing": missing,
        "points": _points(curve, choice),
        "warnings": warnings,
    }


def _authors_plan_for(
    s: SweepSettings, profile: VllmProfile | None, curve: Curve, i: int, usage_col: str | None
) -> MemoryPlan:
    if profile is None:
        raise MemoryInputMissing(
            "memory=authors reads KV_full from vLLM's start-up log: give "
            "--server-memory (reference/server_memory.csv) and --server-memory-sweep"
        )
    if usage_col is None or curve.extra.get(usage_col) is None:
        raise MemoryInputMissing(
            "memory=authors needs the runs' peak KV usage in % of the pool (max_kv_cache_usage_pct)"
        )
    return authors_plan(float(curve.extra[usage_col][i]), profile, _device_bytes(s, profile, nominal=True))


def _engine_plan(
    s: SweepSettings,
    profile: VllmProfile | None,
    rows: pd.DataFrame,
    curve: Curve,
    i: int,
    model: str,
    dtype: str,
    bound: float | None,
    kv_col: str | None,
) -> MemoryPlan:
    peak = curve.peak_batch[i] if curve.peak_batch is not None else curve.batch[i]
    if curve.kv_bytes is not None:
        kv, kv_source = float(curve.kv_bytes[i]), f"measured ({kv_col})"
    elif bound is not None:
        kv = bound
        kv_source = f"bound: {np.ceil(peak):g} x ({curve.prompt_len:g} + {curve.output_len:g}) tokens"
    else:
        raise MemoryInputMissing(
            "no KV measurement and no bound (give --kv-bytes-per-token and --prompt-tokens/--output-tokens)"
        )
    weights = _weights_bytes(model, rows, dtype, profile)
    overhead = _overhead(s, profile, rows, curve, i, weights, kv, model)
    device = _device_bytes(s, profile)
    return plan_memory(kv, weights, overhead, curve.cap[i], device, kv_source, s.baseline_util)


def _overhead(
    s: RuleSettings,
    profile: VllmProfile | None,
    rows: pd.DataFrame,
    curve: Curve,
    i: int,
    weights: float,
    kv: float,
    model: str,
) -> Overhead:
    """In order: the user's number; vLLM's start-up accounting; a measured peak; the vLLM fit."""
    import pandas as pd

    if s.overhead_gib is not None:
        return fixed_overhead(s.overhead_gib * GiB, "--overhead-gib")
    if profile is not None:
        return profile.overhead
    if "peak_memory_bytes" in rows.columns:
        at = rows[pd.to_numeric(rows[PROJECT.cap], errors="coerce") == curve.cap[i]]
        peak = pd.to_numeric(at["peak_memory_bytes"], errors="coerce").dropna()
        if len(peak):
            return fixed_overhead(
                max(float(peak.iloc[0]) - weights - kv, 0.0), "measured peak memory at B_opt - weights - KV"
            )
    return vllm_fit_for(model)


def vllm_fit_for(model: str) -> Overhead:
    """The authors' vLLM overhead (advisor rows of reference/server_memory.csv) scaled to this model."""
    from common.serving.models import get_config

    frame = read_csv(AUTHORS_MEMORY)
    rows = frame[frame["sweep"] == "advisor"]
    profiles = [vllm_profile(frame, m, "advisor", str(AUTHORS_MEMORY)) for m in rows["model"]]
    fit = fit_overhead(profiles, [get_config(m).vocab_size for m in rows["model"]])
    try:
        vocab = get_config(model).vocab_size
    except Exception as err:  # noqa: BLE001 - an unknown model: the user gives the overhead instead
        raise MemoryInputMissing(
            f"model {model!r}: no config to scale vLLM's overhead by ({err}); give --overhead-gib"
        ) from None
    return fit.for_vocab(vocab)


def _device_bytes(s: RuleSettings, profile: VllmProfile | None, nominal: bool = False) -> float:
    """The device memory the plan divides: the user's, the spec sheet's (its nominal size), else what
    vLLM saw on the authors' GPU (63.43 GiB, for their sweeps)."""
    if s.device_mem_gib:
        return s.device_mem_gib * GiB
    if s.device:
        return _spec(s.device, s.profile_dir).mem_bytes
    if profile is not None:
        return profile.total_bytes  # the device memory vLLM saw on the authors' GPU
    raise MemoryInputMissing(
        "the device memory is unknown: give --device (e.g. h100-64gb) or --device-mem-gib"
    )


def default_profile_dir() -> Path:
    """Where the probe saves this host's profile by default: <paths.results_dir>/hardware, read from
    conf/paths/default.yaml (the one place the results directory is set; advise is no hydra app)."""
    import yaml

    from common.hardware import profile_dir
    from common.repo import CONF_DIR, REPO_ROOT

    paths = yaml.safe_load((CONF_DIR / "paths" / "default.yaml").read_text())
    return profile_dir(str(paths["results_dir"]).replace("${paths.root}", str(REPO_ROOT)))


def _spec(name: str, profile_dir: str | None = None):
    """A spec sheet, or for "local" this host's measured profile (common.hardware.probe)."""
    from common.hardware import get_spec

    try:
        return get_spec(name, profile_dir or default_profile_dir())
    except (KeyError, FileNotFoundError) as err:
        raise BadInput(f"--device: {err}") from None


def _curve_keys(group: pd.DataFrame) -> dict:
    return {
        "model": str(group["model"].iloc[0]) if "model" in group.columns else None,
        "output_len": (_plain_number(group["output_len"].iloc[0]) if "output_len" in group.columns else None),
    }


def _plain_number(value) -> int | float | None:
    """An integral value as an int (output lengths read as floats from a CSV), NaN as None."""
    value = float(value)
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() else value


def _choice_dict(c: Choice, curve: Curve, best: float | None = None) -> dict:
    """best: the highest throughput measured, runs left out by --exclude-preempted included."""
    best = max(best or 0.0, float(curve.throughput.max()))
    return {
        "b_opt": c.batch,
        "b_opt_cap": c.cap,
        "throughput": c.throughput,
        "latency_ms": c.latency_ms,
        "fraction_of_best": c.throughput / best,
        "efficiency": c.efficiency,
        "slo_ms": c.slo_ms,
        "slo_rule": c.slo_rule,
        "epsilon": c.epsilon,
        "t1": c.t1,
        "best_throughput": best,
        "preempted": None if curve.preemptions is None else float(curve.preemptions[c.index]),
    }


def _points(curve: Curve, c: Choice) -> list[dict]:
    return [
        {
            "batch": float(curve.batch[j]),
            "cap": float(curve.cap[j]),
            "throughput": float(curve.throughput[j]),
            "latency_ms": float(curve.latency_ms[j]),
            "efficiency": None if c.efficiencies is None else float(c.efficiencies[j]),
            "kv_gib": None if curve.kv_bytes is None else float(curve.kv_bytes[j]) / GiB,
            "meets_slo": bool(c.meets_slo[j]),
            "efficient": bool(c.efficient[j]),
            "chosen": j == c.index,
        }
        for j in range(len(curve.batch))
    ]


SUMMARY_MEMORY = (
    "kv_gib",
    "kv_full_gib",
    "footprint_gib",
    "gpu_memory_utilization",
    "freed_gib",
    "freed_pct",
    "replicas",
    "device_gib",
    "method",
)


def curve_summary(r: dict) -> dict:
    """One curve's answer in brief (what `advise --json` prints, one object per line): the curve, B_opt and
    its cap, and the memory the plan frees; the error instead where the curve failed."""
    head = {"label": r["label"], "model": r.get("model"), "output_len": r.get("output_len")}
    if "error" in r:
        return {**head, "error": r["error"]}
    memory = r.get("memory") or {}
    return {
        **head,
        "b_opt": _plain_number(r["b_opt"]),
        "cap": _plain_number(r["b_opt_cap"]),
        "throughput": r["throughput"],
        "latency_ms": r["latency_ms"],
        "slo_ms": r["slo_ms"],
        "fraction_of_best": r["fraction_of_best"],
        "preempted": bool(r.get("preempted")),
        **{k: memory.get(k) for k in SUMMARY_MEMORY},
        "memory_missing": r.get("memory_missing"),
    }


def advise_sweep(settings: SweepSettings) -> tuple[list[dict], dict]:
    """The BCA on every curve of a sweep: (one result per curve, the settings record). A curve that fails
    is reported as {"label", "error"}; BadInput when the input is bad or every curve fails."""
    s = settings.inputs()
    record = settings_record(s)
    frame, layout = read_sweep(Path(s.sweep))
    check_sweep(frame, layout, s, str(s.sweep))
    groups = _groups(frame, layout, s)
    log.info("BCA on %s (%s layout): %d curve(s)", s.sweep, layout.name, len(groups))
    results = []
    for label, group in groups:
        try:
            results.append(advise_group(label, group, layout, s))
        except BadInput as err:
            if len(groups) == 1:
                raise
            message = str(err).removeprefix(f"{label}: ")
            log.warning("%s: %s", label, message)
            results.append({"label": label, **_curve_keys(group), "error": message})
    if all("error" in r for r in results):
        raise BadInput(
            "no curve could be advised: " + "; ".join(f"{r['label']}: {r['error']}" for r in results)
        )
    record["sweep"] = shown(s.sweep)
    return results, record


# ---- the BCA without a sweep -------------------------------------------------------------------
def advise_analytic(s: AnalyticSettings) -> tuple[list[dict], dict]:
    """The step model's curve for a model on a device (no sweep), then the same rule and memory plan; the
    latency is checked against the measured mode where the authors measured this case."""
    from common.serving import roofline as rl
    from common.serving.models import ModelUnavailable

    record = settings_record(s)
    try:
        shape = rl.model_shape(s.model)
    except ModelUnavailable as err:
        raise BadInput(f"--model: {err}") from None
    if not s.device:
        raise BadInput("analytic: --device is needed (its bandwidth and FLOP/s drive the step model)")
    spec = _spec(s.device, s.profile_dir)
    if s.dtype not in spec.peak_flops or s.dtype not in rl.DTYPE_BYTES:
        raise BadInput(f"--dtype {s.dtype}: {s.device} has {', '.join(spec.peak_flops)}")
    try:
        batches = sorted({int(b) for b in s.batches.split(",")})
    except ValueError:
        raise BadInput(f"--batches {s.batches!r}: a comma-separated list of integers") from None
    if not batches or batches[0] < 1:
        raise BadInput(f"--batches {s.batches!r}: batch sizes must be >= 1")
    if s.prompt < 1 or s.output < 1:
        raise BadInput("--prompt and --output must be >= 1 token")
    device = s.device_mem_gib * GiB if s.device_mem_gib else spec.mem_bytes
    kv_per_token = rl.kv_bytes_per_token(shape, s.dtype)
    weights = shape.n_params * rl.DTYPE_BYTES[s.dtype]
    overhead = (
        fixed_overhead(s.overhead_gib * GiB, "--overhead-gib")
        if s.overhead_gib is not None
        else vllm_fit_for(s.model)
    )

    def kv(b):
        return kv_bound_bytes(b, s.prompt, s.output, kv_per_token)

    def fits(b):  # the default engine (baseline util) must hold B sequences at full length
        return weights + kv(b) + overhead.budget_bytes(b) <= s.baseline_util * device

    key = s.device.strip().lower().replace("_", "-")  # as common.hardware.get_spec reads it
    step_model, how = analytic_step_model(s.model, key, spec, s.dtype)
    label = f"{s.model} {s.prompt}+{s.output} on {s.device} (step model)"
    curve = analytic_curve(label, shape, step_model, s.prompt, s.output, batches, fits, s.chunked_prefill)
    for x in curve.skipped:
        log.warning("%s: left out %s", label, x)
    slo, rule = slo_threshold(curve, s.slo_ms, s.slo_factor, s.ref_batch)
    choice = choose_batch(curve, slo, s.epsilon, rule, s.selection)
    source = f"bound: {choice.cap:g} x ({s.prompt} + {s.output}) tokens"
    plan = plan_memory(kv(choice.cap), weights, overhead, choice.cap, device, source, s.baseline_util)
    check = latency_check(s.model, shape, step_model, s.prompt, s.output, key)
    result = {
        "label": label,
        "model": s.model,
        "output_len": s.output,
        "dtype": s.dtype,
        "cap_column": "max_num_seqs",
        **_choice_dict(choice, curve),
        "kv_measured_gib": None,
        "kv_bound_gib": kv(choice.cap) / GiB,
        "kv_bytes_per_token": kv_per_token,
        "prompt_tokens": s.prompt,
        "output_tokens": s.output,
        "device_spec": spec.name,
        "step_model": {"how": how, **step_model.to_dict()},
        "latency_check": check,
        "memory": plan.to_dict(),
        "memory_missing": None,
        "points": _points(curve, choice),
        "warnings": [f"left out {x}" for x in curve.skipped],
    }
    return [result], record
