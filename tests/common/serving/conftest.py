"""Shared fixtures: one tiny engine per module (building models is the slow part of these tests)."""

import pytest
import torch

from common.serving.hf_engine import HFEngine


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the 2 cores are shared with other test processes
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_engine() -> HFEngine:
    return HFEngine("opt-tiny", device="cpu", dtype="fp32")
