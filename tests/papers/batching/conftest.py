"""One tiny batching sweep per test session, run through the real sweep config; the study, BCA and
figures tests read it as the reproduction does."""

import pytest

from tests.papers.batching.helpers import TINY_REPLICATION, TINY_SWEEP, run_entry


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    """A results dir holding a finished tiny sweep (opt-tiny, batch 1, 2, 4, on this CPU)."""
    from papers.batching import sweep

    results = tmp_path_factory.mktemp("batching_results")
    run_entry(sweep, "batching/sweep", results, *TINY_SWEEP)
    return results


@pytest.fixture(scope="session")
def tiny_replication(tiny_results):
    """Two opt-tiny replicas (a core each where there are two) against one, in the session's results dir."""
    from papers.batching import replicate

    summary = run_entry(replicate, "batching/replicate", tiny_results, *TINY_REPLICATION)
    return tiny_results, summary
