"""The decode-step model (common.serving.step_model) against the authors' H100 measurements, and how well
it predicts what it was not fitted on.

    python -m papers.batching.calibrate            # reads the shipped reference data only (seconds)

Data (papers/batching/reference): the offline profiler's decode phases (static batches, 161-token prompts,
337 decode steps; per model the experiment with the most batch sizes) and the online ShareGPT background
sweep (mean ITL at the mean running batch, varied request lengths, runs without preemption; its prefill
steps interleave with the decode steps, one per admitted request). Three protocols, each fitted by the one
routine (`fit_step_model`) and scored per model and source as step-time MAPE:

    in-sample       fitted on everything, scored on everything
    batch-held-out  fitted on batches <= batch_split of every model, scored on every larger batch
    model-held-out  fitted on transfer_fit (the two OPT models), scored on the other models (Llama-2)

beside the bare roofline (common.serving.roofline.step_time, nothing fitted). The goals (batch-held-out
<= 5%, model-held-out <= 8%) are printed with the verdict; nothing is tuned to the held-out sets. Writes
<result_dir>/summary.json (results/batching/calibrate/<scale>/ by default; the numbers are the same at
every scale, since the data is the authors').
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import papers.batching.config  # noqa: F401 - registers the schemas
from common.app import entrypoint
from common.atomic import write_atomic
from common.errors import BadInput

log = logging.getLogger(__name__)
REFERENCE = Path(__file__).resolve().parent / "reference"
MODELS = ("opt-1.3b", "opt-2.7b", "llama-2-7b", "llama-2-13b")
# unprofiled Fig. 4 runs first; the nsys-profiled ones are 0-6% slower (reference README)
EXPERIMENTS = (
    "prefill_vs_decode/batch_evolution",
    "decode_kernels/batch_size_evolution",
    "decode_kernels/distinct_kernels",
)
SOURCES = ("offline", "background")
DEVICE = "h100-64gb"  # the authors' GPU (MareNostrum 5)
DTYPE = "fp16"


def offline_observations(frame, model: str) -> tuple[str, list]:
    """The model's decode phases from the experiment with the most batch sizes (preference order on ties),
    each as its mean decode step."""
    from common.serving import roofline as rl
    from common.serving.step_model import decode_observations

    shape = rl.model_shape(model)
    ok = frame[(frame["model"] == model) & (frame["status"] == "ok")]
    counts = {e: int((ok["experiment"] == e).sum()) for e in EXPERIMENTS}
    best = max(EXPERIMENTS, key=lambda e: (counts[e], -EXPERIMENTS.index(e)))
    rows = ok[ok["experiment"] == best].sort_values("batch_size")
    return best, [
        decode_observations(
            shape, r.batch_size, r.prompt_len, int(r.decode_steps), r.decode_time_s, source="offline"
        )
        for r in rows.itertuples()
    ]


def background_observations(frame, model: str) -> list:
    """One mean engine step per run without preemption: the mean ITL at the mean running batch, whose
    sequences hold on average the prompt plus half the output; each request admitted as one finishes
    costs a prefill step of its prompt (chunked prefill was off), B / mean output of them per decode step."""
    from common.serving import roofline as rl
    from common.serving.step_model import StepObservation

    shape = rl.model_shape(model)
    rows = frame[(frame["model"] == model) & (frame["num_preemptions"] == 0)].sort_values("max_num_seqs")
    out = []
    for r in rows.itertuples():
        prompt, output = r.total_input_tokens / r.num_prompts, r.total_output_tokens / r.num_prompts
        out.append(
            StepObservation(
                shape,
                float(r.mean_running_batch),
                prompt + output / 2,
                r.mean_itl_ms / 1e3,
                prefills=r.mean_running_batch / output,
                prefill_tokens=prompt,
                source="background",
            )
        )
    return out


def _read(path: Path):
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"reference_dir: {path} is missing (the authors' data, papers/batching/reference)")
    return pd.read_csv(path)


def authors_observations(models=MODELS, reference: Path = REFERENCE, sources=SOURCES) -> tuple[list, dict]:
    """(every observation of `models` from `sources`, the offline experiment used per model)."""
    offline = _read(Path(reference) / "offline_phase_split.csv")
    background = _read(Path(reference) / "background_sweep.csv")
    unknown = sorted(set(models) - set(offline["model"]))
    if unknown:
        raise BadInput(f"models: {unknown} are not in the authors' data ({', '.join(MODELS)})")
    obs, experiments = [], {}
    for model in models:
        if "offline" in sources:
            experiments[model], rows = offline_observations(offline, model)
            obs += rows
        if "background" in sources:
            obs += background_observations(background, model)
    return obs, experiments


@functools.lru_cache(maxsize=8)
def authors_step_model(models: tuple[str, ...] = MODELS, device: str = DEVICE, dtype: str = DTYPE):
    """The step model fitted on the authors' H100 runs of `models` (offline and background)."""
    from common.hardware import get_spec
    from common.serving.step_model import fit_step_model

    obs, _ = authors_observations(models)
    return fit_step_model(obs, get_spec(device), dtype)


def _roofline_errors(observations: list, spec, dtype: str) -> dict:
    """The bare roofline (nothing fitted) per model and source: decode steps only, prefills ignored."""
    from common.serving import roofline as rl

    groups: dict[str, list] = {}
    for o in observations:
        groups.setdefault(f"{o.model}/{o.source}", []).append(o)
    return {
        k: {
            "step_mape_pct": rl.mape(
                [rl.step_time(o.shape, o.batch, o.context, spec, dtype) for o in g], [o.time_s for o in g]
            )
        }
        for k, g in groups.items()
    }


def benchmark(
    models=MODELS,
    reference: Path = REFERENCE,
    device: str = DEVICE,
    dtype: str = DTYPE,
    batch_split: float = 32,
    transfer_fit=("opt-1.3b", "opt-2.7b"),
    sources=SOURCES,
) -> dict:
    """The three protocols (module docstring): per protocol, the fit's coefficients and its errors per
    model and source on the observations it was not fitted on (all of them, in-sample)."""
    from common.hardware import get_spec
    from common.serving.step_model import errors, fit_step_model

    try:
        spec = get_spec(device)
    except (KeyError, FileNotFoundError) as err:
        raise BadInput(f"device: {err}") from None
    if dtype not in spec.peak_flops:
        raise BadInput(f"dtype: {device} has no {dtype} peak ({', '.join(spec.peak_flops)})")
    missing = sorted(set(transfer_fit) - set(models))
    if missing or len(set(transfer_fit)) == len(set(models)):
        raise BadInput(f"transfer_fit: {list(transfer_fit)} must be a proper subset of models {list(models)}")
    obs, experiments = authors_observations(models, reference, sources)
    protocols = {
        "in_sample": (obs, obs),
        "batch_held_out": (
            [o for o in obs if o.batch <= batch_split],
            [o for o in obs if o.batch > batch_split],
        ),
        "model_held_out": (
            [o for o in obs if o.model in transfer_fit],
            [o for o in obs if o.model not in transfer_fit],
        ),
    }
    out = {
        "device": device,
        "device_spec": spec.to_dict(),
        "dtype": dtype,
        "sources": list(sources),
        "offline_experiment": experiments,
        "batch_split": batch_split,
        "transfer_fit": list(transfer_fit),
        "roofline": _roofline_errors(obs, spec, dtype),
        "protocols": {},
    }
    for name, (train, test) in protocols.items():
        if len(train) < 2 or not test:
            raise BadInput(
                f"{name}: {len(train)} observations to fit and {len(test)} to score; check "
                "batch_split, transfer_fit and models"
            )
        model = fit_step_model(train, spec, dtype)
        points: dict[str, list] = {}
        for o in test:
            points.setdefault(f"{o.model}/{o.source}", []).append(
                {"batch": o.batch, "measured_ms": o.time_s * 1e3, "predicted_ms": model.predict(o) * 1e3}
            )
        out["protocols"][name] = {
            "fitted_on": list(model.fitted_on),
            "model": model.to_dict(),
            "errors": errors(model, test),
            "points": points,
        }
    return out


def table(summary: dict, goals: dict) -> str:
    """The per-model MAPE of each protocol as a plain-text table, with the goals' verdicts."""
    keys = sorted(
        {k for p in summary["protocols"].values() for k in p["errors"]},
        key=lambda k: (MODELS.index(k.split("/")[0]) if k.split("/")[0] in MODELS else 99, k),
    )
    split = f"batch>{summary['batch_split']:g}"
    head = (
        f"{'model/source':26s} {'in-sample':>10s} {split:>10s} {'(max)':>7s} {'model':>8s} {'roofline':>9s}"
    )
    lines = [
        f"step-time MAPE %, the authors' H100 data ({summary['device']}), fitted by fit_step_model",
        head,
    ]

    def cell(protocol, key, field="step_mape_pct", width=10):
        e = summary["protocols"][protocol]["errors"].get(key)
        return f"{e[field]:{width}.2f}" if e else " " * (width - 1) + "-"

    for k in keys:
        lines.append(
            f"{k:26s} {cell('in_sample', k)} {cell('batch_held_out', k)} "
            f"{cell('batch_held_out', k, 'step_max_ape_pct', 7)} "
            f"{cell('model_held_out', k, width=8)} {summary['roofline'][k]['step_mape_pct']:9.1f}"
        )
    for name, goal in goals.items():
        worst = max(e["step_mape_pct"] for e in summary["protocols"][name]["errors"].values())
        lines.append(
            f"{name}: worst MAPE {worst:.2f}% against the goal of {goal:g}%: "
            f"{'met' if worst <= goal else 'NOT met'}"
        )
    return "\n".join(lines)


@entrypoint("batching/calibrate")
def main(cfg, run):
    reference = Path(cfg.reference_dir)
    summary = {
        "benchmark": "calibrate",
        "source": str(reference),
        **benchmark(
            list(cfg.models),
            reference,
            cfg.device,
            cfg.dtype,
            cfg.batch_split,
            tuple(cfg.transfer_fit),
            tuple(cfg.sources),
        ),
    }
    goals = {"batch_held_out": cfg.goal_batch_mape_pct, "model_held_out": cfg.goal_model_mape_pct}
    summary["goals"] = {
        name: {
            "goal_pct": goal,
            "worst_mape_pct": max(e["step_mape_pct"] for e in summary["protocols"][name]["errors"].values()),
        }
        for name, goal in goals.items()
    }
    for g in summary["goals"].values():
        g["met"] = g["worst_mape_pct"] <= g["goal_pct"]
    print(table(summary, goals))
    path = write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info("wrote %s", path)
    return summary


if __name__ == "__main__":
    main()
