#!/usr/bin/env python3
"""The GPU check's first stage: what this machine is. Writes one JSON object to --json FILE (what
the check reads) and prints it as the last line of stdout; anything else a library prints goes
wherever it goes (the check never parses the console for it).

Also proves that the engine and the node's engine wrapper import without ROS (the GPU machine has
no rclpy), says which retrieval backend and which profile the device gets, and sets this
machine's package versions beside our pins (pyproject.toml), with where each came from: the
machine's own, or a wheel check.sh installed from .gpu-wheels.

    env_report.py cuda --json env.json
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's rns_ros
# what the check reports, pinned or not; torch/torchvision/numpy are always the machine's own
PACKAGES = ("torch", "torchvision", "numpy", "open_clip_torch", "sam2", "timm", "faiss-cpu", "hydra-core",
            "portalocker", "pillow", "transformers", "pytest")


def pins() -> dict[str, str]:
    """name -> pinned version, from pyproject.toml's dependencies and extras."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", requirement)
        if match:
            found[_normal(match.group(1))] = match.group(2)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def versions() -> dict[str, dict]:
    """Per package: pinned, here (or MISSING), and where this one came from."""
    carried = {_normal(item.rsplit("-", 1)[0]) for item in os.environ.get("RNS_GPU_WHEELS_INSTALLED", "").split(",")
               if "-" in item}
    pinned = pins()
    table = {}
    for name in PACKAGES:
        try:
            here = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            here = "MISSING"
        table[name] = {"pinned": pinned.get(_normal(name), "-"), "here": here,
                       "source": "carried" if _normal(name) in carried else "machine"}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("device", nargs="?", default="cuda")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args()
    import torch

    import rns_ros.cli.bench  # noqa: F401  (the benchmark and the engine, without ROS)
    import rns_ros.cli.segment  # noqa: F401
    import rns_ros.ros.engine  # noqa: F401  (the node's engine wrapper: core only)
    from rns_ros.core.memory.retrieval import resolve_backend
    from rns_ros.core.profiles import cpu_has_native_bf16, resolve_profile
    from rns_ros.machine import cpu_model

    info = {"machine": f"{cpu_model()}, {os.cpu_count()} cores", "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "loadavg": f"{os.getloadavg()[0]:.1f}",
            "imports_without_ros": "rclpy" not in sys.modules, "cpu_native_bf16": cpu_has_native_bf16(),
            "versions": versions()}
    info["packages"] = {name: row["here"] for name, row in info["versions"].items()}  # the short form
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("env: CUDA is not available to torch on this machine")
        index = torch.device(args.device).index or 0
        props = torch.cuda.get_device_properties(index)
        info["device_name"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}"
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            info["device_name"] += f", driver / max SM clock {smi}"
        except (OSError, subprocess.TimeoutExpired):
            pass
    else:
        info["device_name"] = "CPU"
    info["retrieval_backend"] = resolve_backend("auto", torch.device(args.device))
    profile, note = resolve_profile("auto", args.device)
    info["auto_profile"] = note or profile.name
    text = json.dumps(info)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
