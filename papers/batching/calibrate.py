"""The analytical decode model against the authors' H100 measurements (papers/batching/reference).

    python -m papers.batching.calibrate            # reads the shipped reference data only (seconds)

For each of the paper's four models: the pure roofline on the H100-64GB spec (no fitting), the
calibrated model t(B) = t0 + bytes(B)/BW_eff + B*c fitted to all batch sizes, and two hold-outs
(fitted on every other batch size / on the smaller half, predicting the rest). Errors are MAPEs of
decode throughput. Offline data: the profiler's decode phase (161-token prompts, 337 decode steps).
Background data: the online ShareGPT sweep's mean ITL against the mean running batch (runs without
preemption; a second, noisier check, since prefills interleave with decode steps there). The model is
common.serving.roofline's; what is fitted here, and to which of the authors' runs, is this paper's.
Writes <result_dir>/summary.json (results/batching/calibrate/<scale>/ by default; the numbers are the
same at every scale, since the data is the authors').
"""

from __future__ import annotations

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
EXPERIMENTS = ("prefill_vs_decode/batch_evolution", "decode_kernels/batch_size_evolution",
               "decode_kernels/distinct_kernels")
DEVICE = "h100-64gb"  # the authors' GPU (MareNostrum 5)
DTYPE = "fp16"


def offline_observations(frame, model: str) -> tuple[str, list]:
    """The model's decode phases from the experiment with the most batch sizes (preference order on ties)."""
    from common.serving import roofline as rl

    ok = frame[(frame["model"] == model) & (frame["status"] == "ok")]
    counts = {e: int((ok["experiment"] == e).sum()) for e in EXPERIMENTS}
    best = max(EXPERIMENTS, key=lambda e: (counts[e], -EXPERIMENTS.index(e)))
    rows = ok[ok["experiment"] == best].sort_values("batch_size")
    return best, [rl.decode_observation(r.batch_size, r.prompt_len, int(r.decode_steps), r.decode_time_s)
                  for r in rows.itertuples()]


def background_observations(frame, model: str) -> list:
    """One mean decode step per run: the mean ITL at the mean running batch, whose sequences hold on
    average the prompt plus half the output in the KV cache."""
    from common.serving import roofline as rl

    rows = frame[(frame["model"] == model) & (frame["num_preemptions"] == 0)].sort_values("max_num_seqs")
    out = []
    for r in rows.itertuples():
        context = (r.total_input_tokens + r.total_output_tokens / 2) / r.num_prompts
        out.append(rl.Observation(r.mean_running_batch, (context,), 1, r.mean_itl_ms / 1e3))
    return out


def _holdouts(obs: list, shape, bandwidth: float | None, dtype: str) -> dict:
    from common.serving import roofline as rl

    n = len(obs)
    splits = {"interleaved": (obs[::2], obs[1::2]), "extrapolate": (obs[:(n + 1) // 2], obs[(n + 1) // 2:])}
    out = {}
    for name, (train, test) in splits.items():
        model = rl.fit_calibrated(train, shape, dtype, bandwidth)
        out[name] = {"fit_batches": [o.batch for o in train], "test_batches": [o.batch for o in test],
                     "test_mape_pct": rl.throughput_mape(model, test)}
    return out


def calibrate(observations: list, shape, spec, context: float, dtype: str = DTYPE) -> dict:
    """Roofline, calibrated fits (BW_eff free, and pinned at the spec's bandwidth) and hold-outs."""
    from common.serving import roofline as rl

    measured = [o.batch * o.steps / o.time_s for o in observations]
    roofline_pred = [o.batch / rl.step_time(shape, o.batch, sum(o.contexts) / len(o.contexts), spec, dtype)
                     for o in observations]
    ceiling, b_half = rl.half_ceiling_batch(shape, context, spec, dtype)
    out = {"batches": [o.batch for o in observations], "measured_tok_s": measured,
           "roofline": {"mape_pct": rl.mape(roofline_pred, measured), "predicted_tok_s": roofline_pred,
                        "ceiling_tok_s": ceiling, "b_half": b_half}}
    for mode, bandwidth in (("free", None), ("pinned_bw", spec.mem_bandwidth)):
        model = rl.fit_calibrated(observations, shape, dtype, bandwidth)
        ceiling, b_half = model.half_ceiling_batch(context)
        out[mode] = {**model.to_dict(), "mape_pct": rl.throughput_mape(model, observations),
                     "predicted_tok_s": [o.batch * o.steps / model.predict(o) for o in observations],
                     "ceiling_tok_s": ceiling, "b_half": b_half,
                     "holdout": _holdouts(observations, shape, bandwidth, dtype)}
    return out


def _read(path: Path):
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"reference_dir: {path} is missing (the authors' data, papers/batching/reference)")
    return pd.read_csv(path)


def calibrate_models(models=MODELS, reference: Path = REFERENCE, device: str = DEVICE,
                     dtype: str = DTYPE) -> dict:
    """Per model: the roofline and the calibrated fits on the offline and the background runs."""
    from common.hardware import get_spec
    from common.serving import roofline as rl

    try:
        spec = get_spec(device)
    except (KeyError, FileNotFoundError) as err:
        raise BadInput(f"device: {err}") from None
    offline = _read(Path(reference) / "offline_phase_split.csv")
    background = _read(Path(reference) / "background_sweep.csv")
    unknown = sorted(set(models) - set(offline["model"]))
    if unknown:
        raise BadInput(f"models: {unknown} are not in the authors' data ({', '.join(MODELS)})")
    results = {"device": device, "device_spec": spec.to_dict(), "dtype": dtype, "models": {}}
    for model in models:
        shape = rl.model_shape(model)
        experiment, obs = offline_observations(offline, model)
        context = obs[0].contexts[len(obs[0].contexts) // 2]  # mid-decode context, 161 + 169
        entry = {"kv_bytes_per_token": rl.kv_bytes_per_token(shape, dtype), "n_params": shape.n_params,
                 "offline": {"experiment": experiment, **calibrate(obs, shape, spec, context, dtype)}}
        bg = background_observations(background, model)
        entry["background"] = {"n_runs": len(bg), **calibrate(bg, shape, spec, bg[0].contexts[0], dtype)}
        results["models"][model] = entry
        log.info("%-12s offline (%s, %d batch sizes): MAPE %.2f%% (hold-out: interleaved %.2f%%, "
                 "extrapolate %.2f%%), roofline alone %.1f%%, B_h %.0f | background MAPE %.2f%%", model,
                 experiment, len(obs), entry["offline"]["free"]["mape_pct"],
                 entry["offline"]["free"]["holdout"]["interleaved"]["test_mape_pct"],
                 entry["offline"]["free"]["holdout"]["extrapolate"]["test_mape_pct"],
                 entry["offline"]["roofline"]["mape_pct"], entry["offline"]["free"]["b_half"],
                 entry["background"]["free"]["mape_pct"])
    return results


@entrypoint("batching/calibrate")
def main(cfg, run):
    reference = Path(cfg.reference_dir)
    summary = {"benchmark": "calibrate", "source": str(reference),
               **calibrate_models(list(cfg.models), reference, cfg.device, cfg.dtype)}
    path = write_atomic(run.result_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    log.info("wrote %s", path)
    return summary


if __name__ == "__main__":
    main()
