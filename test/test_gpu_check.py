"""The GPU check (scripts/gpu/check.sh, docs/gpu.md) keeps working where no GPU is: its CPU dry run
runs every stage on the tiny test models and writes the same report; and the goal evaluation reads
the benchmark rows right."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["env", "gpu-tests", "adapter", "adapter-hard", "patch-fp32", "patch-bf16", "patch-runtimes",
          "region-fp32", "region-bf16", "core-tests"]


def load_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu" / "check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cpu_dry_run_runs_every_stage_and_writes_the_report(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "RNS_GPU_SITE": str(tmp_path / "site")}
    done = subprocess.run([str(ROOT / "scripts" / "gpu" / "check.sh"), "--device", "cpu", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# GPU check (CPU dry run") and "no figure here is a GPU figure" in report
    payload = json.loads((tmp_path / "report.json").read_text())
    assert [(s["name"], s["status"]) for s in payload["stages"]] == [(name, "ok") for name in STAGES]
    assert payload["env"]["imports_without_ros"] is True and payload["env"]["retrieval_backend"] == "faiss"
    tests = {s["name"]: s["pytest"] for s in payload["stages"] if "pytest" in s}
    assert tests["gpu-tests"]["counts"].get("skipped", 0) >= 4 and not tests["gpu-tests"]["failed"]
    assert tests["core-tests"]["counts"].get("passed", 0) >= 1 and not tests["core-tests"]["failed"]
    for name in STAGES[4:9]:
        rows = payload["results"][name]["rows"]
        assert [r["size"] for r in rows[:2]] == ["640x480", "1280x720"] and all(r["totals"] for r in rows)
    runtimes = payload["results"]["patch-runtimes"]["rows"]  # issue 26's rows, ONNX Runtime on the CPU here
    assert [(r["runtime"], r["size"]) for r in runtimes] == [
        ("torch", "640x480"), ("onnxruntime", "640x480"), ("torch", "1280x720"), ("onnxruntime", "1280x720")]
    assert all(r["agreement"] >= 0.999 for r in runtimes)
    fast = next(r for r in payload["results"]["adapter"]["rows"] if r["solver"].startswith("fast (default"))
    assert fast["same_argmax_vs_plain"] == 1.0 and fast["max_dp_vs_plain"] <= 1e-4
    assert [g["met"] is not None for g in payload["goals"]] == [True] * 4
    assert {"report.md", "report.json", "check.log"} <= {p.name for p in tmp_path.iterdir()}


def test_the_runtime_rows_are_skipped_with_a_reason_without_a_gpu_provider(monkeypatch):
    import sys
    import types

    check = load_check()
    fake = types.SimpleNamespace(__version__="1.30.0", get_available_providers=lambda: ["CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    runtimes, why = check.runtime_rows("cuda")
    assert runtimes == "" and "no CUDA or TensorRT provider" in why and "docs/gpu.md" in why
    fake.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert check.runtime_rows("cuda") == ("torch:fp16,onnxruntime:fp16,tensorrt:fp16", None)
    assert check.runtime_rows("cpu") == ("torch,onnxruntime", None)


def test_goals_name_the_stage_that_holds_a_frame_back():
    check = load_check()
    stages = {s: [0.001] * 3 for s in ("decode", "features", "proposals", "retrieval", "adapter", "upsample", "publish")}
    slow = {"size": "640x480", "totals": [0.05, 0.04, 0.06], "samples": {**stages, "features": [0.03, 0.031, 0.029]}}
    goal = check.pipeline_goal([{"size": "1280x720", "totals": [1.0], "samples": stages}, slow], 30.0, "patch")
    assert goal["met"] is False and goal["measured"].startswith("20.0 frames/s")
    assert goal["held_back_by"] == "features 30 ms of 50 ms"
    assert check.pipeline_goal([], 30.0, "patch")["met"] is None
    rows = [{"solver": "plain (reference loop)", "wall_median_ms": 300.0},
            {"solver": "fast (default: exact steps)", "wall_median_ms": 7.0, "same_argmax_vs_plain": 1.0,
             "max_dp_vs_plain": 3e-7}]
    timing, agreement = check.adapter_goal({"rows": rows, "default_execution": "exact steps on CUDA"})
    assert timing["met"] is True and "10.0 us per step" in timing["held_back_by"] and agreement["met"] is True


def test_pytest_summary_reads_counts_and_failures():
    check = load_check()
    output = ("FAILED test/core/a.py::test_x - AssertionError: no\nSKIPPED [2] test/core/b.py:3: needs a CUDA device\n"
              "1 failed, 5 passed, 2 skipped, 300 deselected in 12.3s\n")
    summary = check.pytest_summary(output)
    assert summary["counts"] == {"failed": 1, "passed": 5, "skipped": 2, "deselected": 300}
    assert summary["failed"] == ["test/core/a.py::test_x"] and summary["skip_reasons"] == ["needs a CUDA device"]
