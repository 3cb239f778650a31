"""Shared settings of the evaluation tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny matmuls are ~50x slower with 2 OpenMP threads on a busy 2-core machine; one thread
    keeps these tests fast and steady. Restored afterwards for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
