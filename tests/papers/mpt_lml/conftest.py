"""One torch thread per test: the machine's 2 cores are shared, and a run_task that set another
count (an entry point's torch_threads) must not leak into the next test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
