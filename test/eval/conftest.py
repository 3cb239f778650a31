"""Shared settings of the evaluation tests."""
import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """The evaluation tests solve many tiny classifiers: one torch thread (see test/conftest.py)."""
