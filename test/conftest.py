"""Fixtures shared by every test folder."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def load_script():
    """load_script("bench_fleet.py") -> that file of scripts/ as a module (the benchmarks and the GPU
    check are scripts, not modules of the package)."""
    def load(relative: str):
        path = SCRIPTS / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def one_torch_thread():
    """Tiny matmuls are ~50x slower with 2 OpenMP threads on a busy 2-core machine; one thread
    keeps small-problem tests fast and steady. Restored afterwards for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory):
    """Everything the engine caches (compiled kernel, ONNX exports of the tiny models) goes to one
    folder per test session, not to ~/.cache: a test never sees a stale file from an earlier run,
    and an export made by one test is reused by the next (rns_ros.core.cache). Subprocesses inherit it."""
    import os

    before = os.environ.get("RNS_ROS_CACHE_DIR")
    os.environ["RNS_ROS_CACHE_DIR"] = str(tmp_path_factory.mktemp("rns_ros_cache"))
    yield os.environ["RNS_ROS_CACHE_DIR"]
    if before is None:
        os.environ.pop("RNS_ROS_CACHE_DIR", None)
    else:
        os.environ["RNS_ROS_CACHE_DIR"] = before
