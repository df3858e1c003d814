"""One torch thread per test: the 2 cores are shared, and an entry point's torch_threads must not leak."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
