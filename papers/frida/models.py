"""The three model families of the issue. Each ends in a linear layer with a bias, because the
property-inference detector reads label counts from the change of that bias (see detectors/property).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling; 28x28 or 32x32 single- or 3-channel."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 84):
        super().__init__()
        channels, side = input_shape[0], input_shape[-1]
        if len(input_shape) != 3 or side < 28:
            raise ValueError(f"lenet5 needs [C, H, W] inputs with H, W >= 28, got {input_shape}")
        pad = 2 if side == 28 else 0
        self.body = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, *input_shape)).shape[1]
        self.body.extend([nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, hidden), nn.ReLU()])
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class CifarCNN(nn.Module):
    """The two-conv CNN of McMahan et al. (2017) for 32x32x3 images."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 512):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"cifar_cnn needs [C, H, W] inputs, got {input_shape}")
        self.body = nn.Sequential(
            nn.Conv2d(input_shape[0], 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, *input_shape)).shape[1]
        self.body.extend([nn.Linear(flat, hidden), nn.ReLU()])
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class CharGRU(nn.Module):
    """Next-character model for Shakespeare, LEAF's design made small for CPUs: an 8-dimensional
    character embedding, one GRU layer of `hidden` units (LEAF: two LSTM layers of 256), and a linear
    head on the last state. Input: [N, L] int64 character ids; classes = the vocabulary."""

    vmap_ok = False  # torch.func.vmap has no batching rule for nn.GRU: per-sample gradients loop

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 64):
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"gru needs [L] character windows, got {input_shape}")
        self.embed = nn.Embedding(num_classes, 8)
        self.rnn = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        _, last = self.rnn(self.embed(x))
        return self.head(last[-1])


BUILDERS = {"mlp": MLP, "lenet5": LeNet5, "cifar_cnn": CifarCNN, "gru": CharGRU}


def build_model(name: str, input_shape, num_classes: int, hidden: int, seed: int = 0) -> nn.Module:
    """Same seed, same initial weights: the server's initial global model is reproducible."""
    torch.manual_seed(seed)
    return BUILDERS[name](tuple(input_shape), num_classes, hidden)


def random_inputs(model: nn.Module, n: int, input_shape, seed: int, num_classes: int) -> torch.Tensor:
    """Inputs that carry no data: uniform noise in the [0, 1] range every image dataset is scaled to,
    or uniformly random characters for a text model."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, CharGRU):
        return torch.randint(0, num_classes, (n, *input_shape), generator=gen)
    return torch.rand((n, *input_shape), generator=gen)


# ---- weights as numpy, the form they travel in -----------------------------------------------------
def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def set_weights(model: nn.Module, weights: dict[str, np.ndarray]) -> nn.Module:
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
    return model


def to_record(weights: dict[str, np.ndarray]):
    """Weights -> the ArrayRecord a Flower message carries (keys kept, so layers stay named)."""
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in weights.items()})


def from_record(record) -> dict[str, np.ndarray]:
    return {k: record[k].numpy() for k in record.keys()}


def flatten(weights: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in weights.values()])


def unflatten(vector: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vector[start : start + v.size].reshape(v.shape).astype(v.dtype)
        start += v.size
    return out
