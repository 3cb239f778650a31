"""The GPU check (scripts/gpu/check.sh, docs/gpu.md) keeps working where no GPU is, and a lent GPU's
one run cannot be lost to it (issue 27): a stage that prints noise, crashes or hangs (children
included) costs that stage only; a stage the budget cannot hold is reported as not run, with the
reason; an error while writing the report loses no stage record; the CPU dry run, with a warning
line on stderr and stdout in every Python process, runs every stage on the tiny models and writes
the report; and the goals are read right from the benchmark rows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["env", "gpu-tests", "adapter", "patch-cuda", "region-cuda", "patch-fp32", "adapter-hard", "region-fp32",
          "patch-runtimes", "core-tests"]
WRITE_DATA = ("import json, sys; print('UserWarning: noise on stdout'); print('noise on stderr', file=sys.stderr); "
              "json.dump({'rows': []}, open(sys.argv[1], 'w'))")


@pytest.fixture
def check(load_script):
    return load_script("gpu/check.py")


def alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_stage_that_crashes_hangs_or_is_noisy_costs_only_itself(tmp_path, check):
    Stage, py = check.stage_table.Stage, sys.executable
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    child = scratch / "child.pid"
    hang = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(600)']); open({str(child)!r}, 'w').write(str(child.pid)); time.sleep(600)")
    stages = [Stage("noisy", "noise around its data", (py, "-c", WRITE_DATA, str(scratch / "noisy.json")), 60, 1,
                    "noisy.json"),
              Stage("crash", "a traceback", (py, "-c", "raise RuntimeError('boom')"), 60, 1),
              Stage("hang", "a hang with a child", (py, "-c", hang), 4, 1),
              Stage("after", "runs after the hang", (py, "-c", WRITE_DATA, str(scratch / "after.json")), 60, 1,
                    "after.json"),
              Stage("late", "needs more than is left", (py, "-c", "pass"), 60, 10_000)]
    started = time.monotonic()
    records = check.run_stages(stages, budget=300, out=out, scratch=scratch, device="cpu", quick=True)
    assert time.monotonic() - started < 60
    status = {r["name"]: r["status"] for r in records}
    assert status["noisy"] == status["after"] == "ok" and status["crash"] == "failed (exit 1)"
    assert status["hang"] == "timeout after 4 s" and not alive(int(child.read_text()))
    assert status["late"].startswith("not run: ") and "needs 10000 s" in status["late"]
    assert records[0]["data"] == {"rows": []} and records[3]["data"] == {"rows": []}
    assert sorted(p.stem for p in (out / "stages").iterdir()) == sorted(status)
    log = (out / "check.log").read_text().splitlines()
    assert "RuntimeError: boom" in log and log.count("noise on stderr") == 2
    assert "UserWarning: noise on stdout" not in log  # stdout is the stage's own file
    report = (out / "report.md").read_text()
    assert all(f"| {name} | {status[name]} |" in report for name in status)


def test_a_report_error_loses_no_stage_record(tmp_path, check, monkeypatch):
    Stage, py = check.stage_table.Stage, sys.executable
    monkeypatch.setattr(check.report, "build", lambda **kwargs: {}["a bug in the report"])
    stages = [Stage(name, "", (py, "-c", WRITE_DATA, str(tmp_path / f"{name}.json")), 60, 1, f"{name}.json")
              for name in ("first", "second")]
    records = check.run_stages(stages, budget=120, out=tmp_path / "out", scratch=tmp_path, device="cpu")
    assert [r["status"] for r in records] == ["ok", "ok"]
    saved = [json.loads((tmp_path / "out" / "stages" / f"{name}.json").read_text()) for name in ("first", "second")]
    assert [s["data"] for s in saved] == [{"rows": []}] * 2
    log = (tmp_path / "out" / "check.log").read_text()
    assert log.count("report writing failed") == 2 and "KeyError: 'a bug in the report'" in log


def test_the_stage_table_fits_the_budget_and_names_what_each_proves(tmp_path, check):
    table = check.stage_table.table("cuda", False, tmp_path)
    assert [s.name for s in table] == STAGES
    assert sum(s.cap for s in table[:STAGES.index("region-fp32")]) <= 360
    assert all(s.proves and s.least <= s.cap for s in table)
    gpu_tests = next(s for s in table if s.name == "gpu-tests")
    assert "test/test_engine_without_ros.py" in gpu_tests.argv  # the engine on CUDA, without ROS


@pytest.mark.slow
def test_cpu_dry_run_runs_every_stage_and_writes_the_report_despite_noise(tmp_path):
    """Every Python process prints a line to stderr and one to stdout as it starts (what real
    machines print): the report is written all the same (it died on this before issue 27)."""
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "sitecustomize.py").write_text("import sys\nprint('UserWarning: every process says this', "
                                            "file=sys.stderr)\nprint('and this, on stdout')\n")
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "RNS_GPU_SITE": str(tmp_path / "site"), "PYTHONPATH": str(noise)}
    done = subprocess.run([str(ROOT / "scripts" / "gpu" / "check.sh"), "--device", "cpu", "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert report.startswith("# GPU check (CPU dry run") and "no figure here is a GPU figure" in report
    assert report in done.stdout and "[check] env: ok" in done.stderr
    assert (out / "check.log").read_text().count("every process says this") >= len(STAGES)
    payload = json.loads((out / "report.json").read_text())
    assert [(s["name"], s["status"]) for s in payload["stages"]] == [(name, "ok") for name in STAGES]
    env_data = payload["env"]
    assert env_data["imports_without_ros"] is True and env_data["retrieval_backend"] == "faiss"
    assert env_data["versions"]["torch"]["source"] == "machine" and "profile auto -> default" in env_data["auto_profile"]
    tests = {s["name"]: s["pytest"] for s in payload["stages"] if "pytest" in s}
    assert tests["gpu-tests"]["counts"].get("skipped", 0) >= 10 and not tests["gpu-tests"]["failed"]
    assert "needs a CUDA device" in tests["gpu-tests"]["skip_reasons"]
    assert tests["core-tests"]["counts"].get("passed", 0) >= 1 and not tests["core-tests"]["failed"]
    for name in ("patch-cuda", "region-cuda", "patch-fp32", "region-fp32"):
        rows = payload["results"][name]["rows"]
        assert [r["size"] for r in rows] == ["640x480", "1280x720"] and all(r["totals"] for r in rows)
    runtimes = payload["results"]["patch-runtimes"]["rows"]  # issue 26's rows, ONNX Runtime on the CPU here
    assert [(r["runtime"], r["size"]) for r in runtimes] == [
        ("torch", "640x480"), ("onnxruntime", "640x480"), ("torch", "1280x720"), ("onnxruntime", "1280x720")]
    assert all(r["agreement"] >= 0.999 for r in runtimes)
    fast = next(r for r in payload["results"]["adapter"]["rows"] if r["solver"].startswith("fast (default"))
    assert fast["same_argmax_vs_plain"] == 1.0 and fast["max_dp_vs_plain"] <= 1e-4
    assert [g["met"] is not None for g in payload["goals"]] == [True] * 4
    assert {"report.md", "report.json", "check.log", "stages"} <= {p.name for p in out.iterdir()}


def test_the_runtime_rows_are_skipped_with_a_reason_without_a_gpu_provider(monkeypatch, tmp_path, check):
    """On a GPU machine whose onnxruntime has no CUDA/TensorRT provider (the lent ones: onnxruntime-gpu
    does not fit the carry) the stage is reported as not run, with the reason, and fails nothing."""
    import sys
    import types

    check_stages = check.stage_table
    fake = types.SimpleNamespace(__version__="1.30.0", get_available_providers=lambda: ["CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    runtimes, why = check_stages.runtime_rows("cuda")
    assert runtimes == "" and "no CUDA or TensorRT provider" in why and "docs/gpu.md" in why
    stage = next(s for s in check_stages.table("cuda", False, tmp_path) if s.name == "patch-runtimes")
    assert stage.skip == why
    records = check.run_stages([stage], budget=60, out=tmp_path, scratch=tmp_path, device="cuda")
    assert records[0]["status"] == f"not run: skipped here: {why}" and records[0]["seconds"] == 0
    fake.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert check_stages.runtime_rows("cuda") == ("torch:fp16,onnxruntime:fp16,tensorrt:fp16", None)
    assert check_stages.runtime_rows("cpu") == ("torch,onnxruntime", None)


def test_goals_name_the_stage_that_holds_a_frame_back(check):
    report = check.report
    stages = {s: [0.001] * 3 for s in ("decode", "features", "proposals", "retrieval", "adapter", "upsample", "publish")}
    slow = {"size": "640x480", "totals": [0.05, 0.04, 0.06], "samples": {**stages, "features": [0.03, 0.031, 0.029]}}
    goal = report.pipeline_goal([{"size": "1280x720", "totals": [1.0], "samples": stages}, slow], 30.0, "patch")
    assert goal["met"] is False and goal["measured"].startswith("20.0 frames/s")
    assert goal["held_back_by"] == "features 30 ms of 50 ms"
    assert report.pipeline_goal([], 30.0, "patch")["met"] is None
    rows = [{"solver": "plain (reference loop)", "wall_median_ms": 300.0},
            {"solver": "fast (default: exact steps)", "wall_median_ms": 7.0, "same_argmax_vs_plain": 1.0,
             "max_dp_vs_plain": 3e-7}]
    timing, agreement = report.adapter_goal({"rows": rows, "default_execution": "exact steps on CUDA"})
    assert timing["met"] is True and "10.0 us per step" in timing["held_back_by"] and agreement["met"] is True


def test_pytest_results_are_read_from_junit_xml_or_the_console(tmp_path, check):
    report = check.report
    output = ("FAILED test/core/a.py::test_x - AssertionError: no\nSKIPPED [2] test/core/b.py:3: needs a CUDA device\n"
              "1 failed, 5 passed, 2 skipped, 300 deselected in 12.3s\n")
    summary = report.pytest_summary(output)
    assert summary["counts"] == {"failed": 1, "passed": 5, "skipped": 2, "deselected": 300}
    assert summary["failed"] == ["test/core/a.py::test_x"] and summary["skip_reasons"] == ["needs a CUDA device"]
    (tmp_path / "t.py").write_text("import pytest\ndef test_a(): pass\ndef test_b(): assert False\n"
                                   "@pytest.mark.skip(reason='needs a CUDA device')\ndef test_c(): pass\n")
    xml = tmp_path / "t.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "t.py"),
                    f"--junitxml={xml}"], cwd=tmp_path, capture_output=True, timeout=120)
    summary = report.junit_summary(xml)
    assert summary["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert summary["failed"] == ["t.py::test_b"] and summary["skip_reasons"] == ["needs a CUDA device"]
    assert report.junit_summary(tmp_path / "missing.xml") is None
