"""Client partitions for federated experiments, through flwr-datasets' partitioners so our splits
are the ones Flower users get. We hand the partitioner the labels plus a row-id column and read
the row ids back, so callers get index arrays into their own arrays (`Dataset.subset(idx)`)."""

from __future__ import annotations

import numpy as np

from common.errors import BadInput

SCHEMES = ("iid", "dirichlet")


def partition(
    labels,
    num_partitions: int,
    scheme: str = "iid",
    alpha: float | None = None,
    seed: int = 0,
    min_partition_size: int = 1,
    retries: int = 1,
) -> list[np.ndarray]:
    """Split sample indices among `num_partitions` clients.

    iid: a seeded shuffle, then contiguous shards (sizes differ by at most one); alpha is ignored.
    dirichlet: per class, client shares ~ Dir(alpha) (small alpha = strong label skew); flwr
    resamples (up to 10 times, then raises) until every client has >= min_partition_size samples.
    `retries` > 1 starts flwr over that many times in all, from seeds derived from `seed` (the first
    is `seed` itself, so a split that succeeds at once is the same whatever `retries` is): many
    clients at a small alpha need more than flwr's 10 draws.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise BadInput(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if (
        isinstance(num_partitions, bool)
        or not isinstance(num_partitions, (int, np.integer))
        or not 1 <= num_partitions <= len(labels)
    ):
        raise BadInput(f"num_partitions must be an integer in [1, {len(labels)}], got {num_partitions!r}")
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 1:
        raise BadInput(f"retries must be an integer >= 1, got {retries!r}")
    if scheme not in SCHEMES:
        raise BadInput(f"unknown partition scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if scheme == "dirichlet" and (alpha is None or not float(alpha) > 0):
        raise BadInput(f"dirichlet partitioning needs alpha > 0, got {alpha!r}")
    if scheme == "dirichlet" and not 0 <= min_partition_size <= len(labels) // num_partitions:
        raise BadInput(
            f"min_partition_size must be in [0, {len(labels) // num_partitions}] for "
            f"{len(labels)} samples and {num_partitions} partitions, got {min_partition_size}"
        )

    import datasets
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    table = datasets.Dataset.from_dict({"label": labels, "row": np.arange(len(labels))})
    if scheme == "iid":
        partitioner = IidPartitioner(num_partitions=int(num_partitions))
        table = table.shuffle(seed=seed)  # IidPartitioner shards contiguously: the shuffle makes it iid
    else:
        partitioner = DirichletPartitioner(
            num_partitions=int(num_partitions),
            partition_by="label",
            alpha=float(alpha),
            min_partition_size=min_partition_size,
            seed=seed,
        )
    partitioner.dataset = table
    try:
        return [
            np.asarray(partitioner.load_partition(i)["row"], dtype=np.int64) for i in range(num_partitions)
        ]
    except ValueError as e:  # flwr gave up meeting min_partition_size
        if retries > 1:
            return partition(
                labels, num_partitions, scheme, alpha, seed + 1_000_003, min_partition_size, retries - 1
            )
        raise BadInput(
            f"dirichlet partitioning (alpha={alpha}, {num_partitions} partitions, "
            f"min_partition_size={min_partition_size}) failed: {e}"
        ) from e
