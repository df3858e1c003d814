"""Running the batching entry points in-process from their real configs, for the tests."""

import itertools

from common.config import compose, run_task

TINY_SWEEP = [
    "models=[opt-tiny]",
    "batch_sizes=[1,2,4]",
    "workload.prompt_len=4",
    "workload.output_len=3",
    "repeats=1",
    "warmup=0",
    "progress=false",
]
TINY_REPLICATION = [
    "model=opt-tiny",
    "num_requests=8",
    "baseline_batch=8",
    "replicas=[2]",
    "replica_batches=[2]",
    "workload.prompt_len=4",
    "workload.output_len=3",
    "repeats=1",
    "warmup=0",
    "progress=false",
    "timeout_s=120",
]
_RUN = itertools.count()


def run_entry(module, config: str, results, *overrides):
    """Compose conf/<config>.yaml with tiny overrides and run the entry point in-process under `results`
    (each call in its own run dir, as each command line run gets one)."""
    cfg = compose(config, [f"paths.results_dir={results}", "logger=none", "torch_threads=1", *overrides])
    return run_task(module.main.task, cfg, results / "runs" / f"{config.replace('/', '_')}_{next(_RUN)}")
