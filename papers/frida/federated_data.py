"""Who holds which samples: clients hold partitions, the server holds a test set, a pool it draws
fresh canaries from each round, and a non-member pool for the gradient-alignment attack.

Every process (server, each SuperNode, each Ray actor) rebuilds the same split from the federation
config, so no sample ever travels except the canaries the server sends.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from common.data import Dataset, load_dataset, partition, train_test_split
from common.errors import BadInput
from papers.frida.config import FederationConfig


@dataclass
class FederatedData:
    clients: list[Dataset]
    test: Dataset
    canary_pool: Dataset
    nonmembers: Dataset

    @property
    def num_classes(self) -> int:
        return self.test.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.test.input_shape


def federated_data(fed: FederationConfig) -> FederatedData:
    return _build(
        fed.dataset,
        fed.data_dir or None,
        fed.seed,
        fed.num_clients,
        fed.partition,
        fed.alpha,
        fed.min_partition_size,
        fed.max_client_samples,
        fed.test_fraction,
        fed.pool_fraction,
        fed.nonmember_size,
    )


@functools.lru_cache(maxsize=4)
def _build(
    dataset,
    data_dir,
    seed,
    num_clients,
    scheme,
    alpha,
    min_partition_size,
    max_client_samples,
    test_fraction,
    pool_fraction,
    nonmember_size,
) -> FederatedData:
    ds = load_dataset(dataset, data_dir=data_dir, seed=seed)
    rng = np.random.default_rng(seed)
    if scheme == "natural":
        clients, test, pool = _natural(ds, num_clients, min_partition_size, test_fraction, pool_fraction, rng)
    else:
        rest, test = train_test_split(ds, test_fraction, seed)
        members, pool = train_test_split(rest, pool_fraction / (1.0 - test_fraction), seed)
        # 100 clients at alpha 0.1 can exhaust flwr's 10 draws (seed 2 of MNIST did): start it over up
        # to 10 times; a split that succeeds at once is unchanged
        parts = partition(
            members.y,
            num_clients,
            scheme,
            alpha if scheme == "dirichlet" else None,
            seed=seed,
            min_partition_size=min_partition_size if scheme == "dirichlet" else 1,
            retries=10,
        )
        clients = [members.subset(p) for p in parts]
    if max_client_samples:
        clients = [
            c
            if len(c) <= max_client_samples
            else c.subset(np.sort(rng.choice(len(c), max_client_samples, replace=False)))
            for c in clients
        ]
    order = np.random.default_rng(seed).permutation(len(pool))
    nonmembers, canary_pool = pool.subset(order[:nonmember_size]), pool.subset(order[nonmember_size:])
    return FederatedData(clients, test, canary_pool, nonmembers)


def _natural(
    ds: Dataset,
    num_clients: int,
    min_size: int,
    test_fraction: float,
    pool_fraction: float,
    rng: np.random.Generator,
):
    """One client per natural group (a Shakespeare speaker in one play), drawn at random among the
    groups with at least `min_size` samples; the server's test set and pools come from the samples of
    the other groups, so no client's text is ever a canary or a test sample."""
    if ds.groups is None:
        raise BadInput(f"fed.partition: natural needs a dataset with natural groups; {ds.name} has none")
    sizes = np.bincount(ds.groups)
    eligible = np.flatnonzero(sizes >= max(min_size, 1))
    if len(eligible) < num_clients:
        raise BadInput(
            f"fed.num_clients: {ds.name} has {len(eligible)} groups with >= {min_size} samples "
            f"(fed.min_partition_size), fewer than {num_clients}"
        )
    chosen = np.sort(rng.choice(eligible, num_clients, replace=False))
    clients = [ds.subset(np.flatnonzero(ds.groups == g)) for g in chosen]
    rest = np.flatnonzero(~np.isin(ds.groups, chosen))
    n_test, n_pool = int(np.ceil(test_fraction * len(ds))), int(np.ceil(pool_fraction * len(ds)))
    if n_test + n_pool > len(rest):
        raise BadInput(
            f"fed.test_fraction + fed.pool_fraction ask for {n_test + n_pool} samples; the groups "
            f"that are no client hold {len(rest)}"
        )
    rest = rng.permutation(rest)
    return clients, ds.subset(np.sort(rest[:n_test])), ds.subset(np.sort(rest[n_test : n_test + n_pool]))


class CanarySampler:
    """Fresh canaries every round: walk a seeded permutation of the pool and draw a new one when it
    runs out, so no canary repeats until the pool is used up."""

    def __init__(self, pool_size: int, size: int, seed: int):
        if size > pool_size:
            raise ValueError(f"canary_size {size} exceeds the canary pool ({pool_size} samples)")
        self.pool_size, self.size = pool_size, size
        self.rng = np.random.default_rng(seed + 7919)
        self.order, self.pos = self.rng.permutation(pool_size), 0

    def next(self) -> np.ndarray:
        if self.pos + self.size > self.pool_size:
            self.order, self.pos = self.rng.permutation(self.pool_size), 0
        idx = self.order[self.pos : self.pos + self.size]
        self.pos += self.size
        return np.sort(idx)
