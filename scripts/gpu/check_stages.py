"""The GPU check's stages (docs/gpu.md), in the order they run: the most valuable first, so a run
cut short keeps what matters most. Each is one process with a time cap; the caps of the stages
before `region-fp32` add up to 340 s, within the default budget of 360 s; `region-fp32` and
`core-tests` run with what is left, or are reported as not run and why.

To add a stage, put a `Stage` into `table()` where its value puts it: the runner (check.py), the
budget and the report need nothing else. `data` names the file the stage writes into the scratch
folder (JSON from an env report or a benchmark's --json, junit XML from pytest): the report reads
it from there, never from the stage's console output.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_TESTS = ("test/core", "test/test_bench.py", "test/test_engine_without_ros.py")


@dataclass(frozen=True)
class Stage:
    name: str
    proves: str  # what a pass shows, one line (the report's stage table)
    argv: tuple[str, ...]
    cap: float  # seconds at most
    least: float  # seconds it needs at least: with less of the budget left it does not start
    data: str | None = None  # file in the scratch folder that the stage writes
    kind: str = "bench"  # how `data` is read: "env" (JSON), "tests" (junit XML), "bench" (JSON)


def table(device: str, quick: bool, scratch: Path) -> list[Stage]:
    """The stages for `device` ("cuda": the check; "cpu": the dry run) in the order they run."""
    py = sys.executable
    pytest = (py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs")
    if quick:  # tiny models and problems: the dry run proves the plumbing, not the GPU
        adapter = ("--classes", "6", "--dim", "64", "--queries", "200", "--repeats", "1")
        bench = ("--backbone", "test-tiny", "--sam-model", "test-tiny", "--points-per-side", "4",
                 "--classes", "4", "--exemplars", "2", "--steps", "100", "--threads", "1")
        repeats = {"patch": ("--repeats", "1"), "region": ("--repeats", "1")}
        core = ("test/core/test_profiles.py",)
    else:
        adapter = ("--repeats", "5")
        bench = ("--random-weights", "--sam-model", "sam2.1-hiera-large", "--points-per-side", "32")
        repeats = {"patch": ("--repeats", "10"), "region": ("--repeats", "3")}
        core = ("test/core", "test/test_bench.py", "-m", "not gpu") + (("-n", "8") if _has("xdist") else ())

    def junit(name: str) -> tuple[str, ...]:
        return (f"--junitxml={scratch / (name + '.xml')}",)

    def adapter_stage(name: str, extra: tuple[str, ...], skip: str, cap: float, least: float, proves: str) -> Stage:
        return Stage(name, proves, (py, "scripts/bench_adapter.py", "--device", device, *extra, *adapter,
                                    "--skip", skip, "--json", str(scratch / f"{name}.json")),
                     cap, least, f"{name}.json")

    def pipeline(mode: str, profile: str, cap: float, least: float, proves: str) -> Stage:
        name = f"{mode}-{profile}" if profile == "cuda" else f"{mode}-fp32"
        return Stage(name, proves, (py, "-m", "rns_ros.cli.bench", "--device", device, "--modes", mode, "--profile",
                                    profile, "--sizes", "640x480,1280x720", *bench, *repeats[mode],
                                    "--json", str(scratch / f"{name}.json")), cap, least, f"{name}.json")

    return [
        Stage("env", "the machine, its versions against our pins, rns_ros and its engine import without ROS, "
                     "the retrieval backend and profile the GPU gets",
              (py, str(HERE / "env_report.py"), device, "--json", str(scratch / "env.json")), 30, 10, "env.json",
              "env"),
        Stage("gpu-tests", "every gpu-marked test: adapter graphs captured and equal to the plain loop, the "
                           "engine's build/segment_batch/close on CUDA, pipeline on CUDA vs CPU, partition on "
                           "the GPU, no synchronisation between stages, only (H, W) maps to the host",
              (*pytest, "-m", "gpu", *GPU_TESTS, *junit("gpu-tests")), 90, 40, "gpu-tests.xml", "tests"),
        adapter_stage("adapter", (), "torch ops,subspace,L-BFGS", 40, 20,
                      "the adapter's 700 steps on CUDA (graphs) vs the plain loop: time and agreement"),
        pipeline("patch", "cuda", 50, 30, "patch mode end to end under the cuda profile (bf16, TF32), per stage"),
        pipeline("region", "cuda", 70, 40, "region mode, SAM 2.1 hiera-L 32x32 points, cuda profile, per stage"),
        pipeline("patch", "default", 35, 25, "patch mode in fp32 (the paper's protocol), per stage"),
        adapter_stage("adapter-hard", ("--hard",), "torch ops,subspace,L-BFGS,batched,steps", 25, 15,
                      "the same on the noisy partial-support problem"),
        pipeline("region", "default", 60, 40, "region mode in fp32"),
        Stage("core-tests", "the CPU-side core tests on this machine's Python and torch",
              (*pytest, *core, *junit("core-tests")), 300, 30, "core-tests.xml", "tests"),
    ]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
