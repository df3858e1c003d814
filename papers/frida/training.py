"""Local training and evaluation: plain SGD without momentum, so one model step is one gradient
step and the property-inference arithmetic (detectors/property.py) holds step by step."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def num_steps(n: int, batch_size: int, epochs: int) -> int:
    """Steps a client with n samples takes; batch_size 0 means full batch."""
    if n == 0:
        return 0
    return epochs * (1 if batch_size <= 0 else math.ceil(n / batch_size))


def local_train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float, epochs: int,
                batch_size: int, seed: int, canary_x: np.ndarray | None = None,
                canary_y: np.ndarray | None = None, canary_every_batch: bool = True) -> float:
    """SGD on (x, y); the canary joins every batch (or the data set once). Returns the mean loss."""
    xs, ys = torch.as_tensor(x), torch.as_tensor(y)
    cx = cy = None
    if canary_x is not None and len(canary_x):
        cx, cy = torch.as_tensor(canary_x), torch.as_tensor(canary_y)
        if not canary_every_batch:
            xs, ys, cx, cy = torch.cat([xs, cx]), torch.cat([ys, cy]), None, None
    n = len(ys)
    if n == 0 and cx is None:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    bs = n if batch_size <= 0 else batch_size
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, max(n, 1), max(bs, 1)):
            idx = order[start:start + bs]
            xb, yb = xs[idx], ys[idx]
            if cx is not None:
                xb, yb = torch.cat([xb, cx]), torch.cat([yb, cy])
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return float(np.mean(losses))


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy)."""
    model.eval()
    logits = model(torch.as_tensor(x))
    yt = torch.as_tensor(y)
    return F.cross_entropy(logits, yt).item(), (logits.argmax(1) == yt).float().mean().item()


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
