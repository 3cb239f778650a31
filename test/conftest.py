"""Fixtures shared by every test folder."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny matmuls are ~50x slower with 2 OpenMP threads on a busy 2-core machine; one thread
    keeps small-problem tests fast and steady. Restored afterwards for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
