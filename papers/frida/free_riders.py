"""What a free-rider sends instead of a trained model.

Each attack sees what a real free-rider sees: the global model of this round and of the last round
it was sampled in (it keeps that one in its own client state; with client sampling it may be several
rounds old, so the step is divided by the rounds in between) and, for the canary-aware one, the canary
the server sent. Weights are dicts of numpy arrays, so the arithmetic is explicit. A "switching"
free-rider (fed.free_rider=switching) trains honestly until fed.switch_round, then does fed.switch_to.

- plain: the global model unchanged.
- disguised (Fraboni et al. 2021, "advanced disguised"): global + N(0, (m * sigma_t * t^-gamma)^2),
  sigma_t the mean absolute change of the global model over the last round.
- delta_weights (Lin et al. 2019): repeat the last global step, as is. Every delta-weights
  free-rider of a round sends the very same update.
- gradient_noiser (Lin et al. 2019, "advanced delta weights"): repeat the last global step and add
  Gaussian noise whose variance equals that step's per-parameter variance, so no two are alike.
- adaptive: trains honestly once to learn what an honest update looks like, then sends a step
  whose norm and cosine to the last global step match that reference (norm rescaled as the global
  step shrinks), so L2/STD/cosine statistics cannot tell it apart.
- canary_aware: trains on the canary only, for as many steps as an honest client would take: it
  knows how the membership detector works (a stress test of that detector).
"""

from __future__ import annotations

import numpy as np

from papers.frida.models import flatten, unflatten

Weights = dict[str, np.ndarray]


def global_step(global_w: Weights, prev_global: Weights | None, elapsed: int = 1) -> np.ndarray:
    """The global model's change per round since the free-rider last saw it, flat; zeros in its first
    round (nothing to extrapolate yet)."""
    if prev_global is None:
        return np.zeros(sum(v.size for v in global_w.values()))
    return (flatten(global_w) - flatten(prev_global)) / max(elapsed, 1)


def plain(global_w: Weights) -> Weights:
    return {k: v.copy() for k, v in global_w.items()}


def disguised(
    global_w: Weights,
    prev_global: Weights | None,
    server_round: int,
    m: float,
    gamma: float,
    rng: np.random.Generator,
    elapsed: int = 1,
) -> Weights:
    sigma_t = float(np.mean(np.abs(global_step(global_w, prev_global, elapsed))))
    std = m * sigma_t * server_round ** (-gamma)
    flat = flatten(global_w)
    return unflatten(flat + rng.normal(0.0, std, flat.shape) if std > 0 else flat, global_w)


def delta_weights(global_w: Weights, prev_global: Weights | None, elapsed: int = 1) -> Weights:
    return unflatten(flatten(global_w) + global_step(global_w, prev_global, elapsed), global_w)


def gradient_noiser(
    global_w: Weights, prev_global: Weights | None, rng: np.random.Generator, elapsed: int = 1
) -> Weights:
    step = global_step(global_w, prev_global, elapsed)
    std = float(np.std(step))
    noise = rng.normal(0.0, std, step.shape) if std > 0 else 0.0
    return unflatten(flatten(global_w) + step + noise, global_w)


def adaptive(
    global_w: Weights,
    prev_global: Weights,
    ref_norm: float,
    ref_cos: float,
    ref_step_norm: float,
    rng: np.random.Generator,
    elapsed: int = 1,
) -> Weights:
    """A step u with ||u|| = ref_norm * ||last step|| / ref_step_norm and cos(u, last step) = ref_cos."""
    step = global_step(global_w, prev_global, elapsed)
    step_norm = float(np.linalg.norm(step))
    flat = flatten(global_w)
    if step_norm == 0 or ref_step_norm == 0:
        return unflatten(flat, global_w)
    direction = step / step_norm
    noise = rng.normal(size=step.shape)
    noise -= noise.dot(direction) * direction
    noise /= np.linalg.norm(noise)
    cos = float(np.clip(ref_cos, -1.0, 1.0))
    target = ref_norm * step_norm / ref_step_norm
    return unflatten(flat + target * (cos * direction + np.sqrt(1.0 - cos**2) * noise), global_w)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a.dot(b) / (na * nb))


def free_rider_ids(num_clients: int, num_free_riders: int, seed: int) -> list[int]:
    """Which partitions free-ride: a seeded draw, known to the clients (their behaviour) and to the
    metrics (ground truth), never used by any detector."""
    rng = np.random.default_rng(seed + 104729)
    return sorted(int(i) for i in rng.choice(num_clients, size=num_free_riders, replace=False))
