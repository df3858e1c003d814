"""Local training and evaluation: plain SGD without momentum, so one model step is one gradient
step and the property-inference arithmetic (detectors/property.py) holds step by step.

How an honest client mixes the server's canary into its round is the canary protocol
(`fed.canary_mode`), a measured variable of this reproduction:

- every_batch: `canary_per_batch` canary samples (all of them when 0) join every mini-batch, cycling
  through the canary;
- every_epoch: the canary joins the client's data for every epoch (each canary sample once per epoch);
- every_round: the canary joins the data of the first epoch only (each canary sample once per round).

`canary_schedule` is the arithmetic of a round under each protocol (steps, how often each canary
sample is used, the extra sample-gradients it costs); clients train by it and the detectors read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def num_steps(n: int, batch_size: int, epochs: int) -> int:
    """Steps a client with n samples takes; batch_size 0 means full batch."""
    if n == 0:
        return 0
    return epochs * (1 if batch_size <= 0 else math.ceil(n / batch_size))


@dataclass(frozen=True)
class CanarySchedule:
    steps: int  # SGD steps of the round
    uses: np.ndarray  # [k] how many gradients each canary sample contributes over the round
    own_grads: int  # sample-gradients on the client's own data (epochs x n)
    canary_grads: int  # sample-gradients on the canary (the protocol's extra compute)
    ref_steps: int  # the loss attack's reference: fine-tuning steps on the canary ...
    ref_share: float  # ... each with the canary's share of a step's mean gradient

    @property
    def total_grads(self) -> int:
        return self.own_grads + self.canary_grads

    @property
    def mean_batch(self) -> float:
        return self.total_grads / max(self.steps, 1)


def canary_schedule(
    n: int, k: int, batch_size: int, epochs: int, mode: str = "every_batch", per_batch: int = 0
) -> CanarySchedule:
    """The round of an honest client with n samples and a canary of k samples (see module doc)."""
    own = epochs * n
    if k == 0:
        return CanarySchedule(num_steps(n, batch_size, epochs), np.zeros(0, np.int64), own, 0, 0, 0.0)
    if mode == "every_batch":
        steps = num_steps(n, batch_size, epochs) or epochs  # no own data: one canary step per epoch
        c = per_batch or k
        slots = steps * c  # canary sample j is used at slots j, j + k, j + 2k, ... of the cycle
        uses = np.full(k, slots // k, np.int64) + (np.arange(k) < slots % k)
        return CanarySchedule(steps, uses, own, slots, steps, c / ((own + slots) / steps))
    if mode == "every_epoch":
        steps = num_steps(n + k, batch_size, epochs)
        return CanarySchedule(
            steps, np.full(k, epochs, np.int64), own, epochs * k, epochs, k / ((own + epochs * k) / steps)
        )
    if mode == "every_round":
        first = num_steps(n + k, batch_size, 1)
        steps = first + num_steps(n, batch_size, epochs - 1)
        return CanarySchedule(steps, np.ones(k, np.int64), own, k, 1, k / ((n + k) / first))
    raise ValueError(f"unknown canary mode {mode!r}")


def local_train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    canary_x: np.ndarray | None = None,
    canary_y: np.ndarray | None = None,
    canary_mode: str = "every_batch",
    canary_per_batch: int = 0,
) -> float:
    """SGD on (x, y) with the canary mixed in by `canary_mode`. Returns the mean loss."""
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    k = 0 if canary_x is None else len(canary_x)
    cx = cy = None
    if k:
        cx, cy = torch.as_tensor(canary_x), torch.as_tensor(canary_y)
    if len(ys) == 0 and not k:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    losses = []
    step = 0
    c = (canary_per_batch or k) if k else 0
    for epoch in range(epochs):
        ex, ey = xs, ys
        if k and (canary_mode == "every_epoch" or (canary_mode == "every_round" and epoch == 0)):
            ex, ey = torch.cat([xs, cx]), torch.cat([ys, cy])
        n = len(ey)
        bs = n if batch_size <= 0 else batch_size
        order = torch.randperm(n, generator=gen)
        for start in range(0, max(n, 1), max(bs, 1)):
            idx = order[start : start + bs]
            xb, yb = ex[idx], ey[idx]
            if k and canary_mode == "every_batch":
                cidx = (step * c + torch.arange(c)) % k
                xb, yb = torch.cat([xb, cx[cidx]]), torch.cat([yb, cy[cidx]])
            if len(yb) == 0:
                continue
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 4096) -> tuple[float, float]:
    """(mean cross-entropy, accuracy), in batches so a large test set fits in memory."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch):
        logits = model(torch.as_tensor(x[start : start + batch]))
        yt = torch.as_tensor(y[start : start + batch])
        total_loss += F.cross_entropy(logits, yt, reduction="sum").item()
        correct += int((logits.argmax(1) == yt).sum())
    return total_loss / max(len(y), 1), correct / max(len(y), 1)


@torch.no_grad()
def per_sample_loss(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    model.eval()
    return F.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y), reduction="none").numpy()


def train_steps(model: nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float, steps: int) -> float:
    """Full-batch SGD steps on a small set (the canary); returns the last loss."""
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
    return loss.item()
