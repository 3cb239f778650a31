#!/usr/bin/env python3
"""The GPU check's first stage: what this machine is, as one JSON line (the last line printed).
Also proves that the engine imports without ROS (the GPU machine has no rclpy) and says which
retrieval backend the support memory would use on the device."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's rns_ros


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    import torch

    import rns_ros.cli.bench  # noqa: F401  (the benchmark and the engine, without ROS)
    import rns_ros.cli.segment  # noqa: F401
    from rns_ros.core.memory.retrieval import resolve_backend
    from rns_ros.core.profiles import cpu_has_native_bf16
    from rns_ros.machine import cpu_model

    cpu = cpu_model()
    info = {"machine": f"{cpu}, {os.cpu_count()} cores", "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "loadavg": f"{os.getloadavg()[0]:.1f}",
            "imports_without_ros": "rclpy" not in sys.modules, "cpu_native_bf16": cpu_has_native_bf16(),
            "packages": {}}
    for name in ("numpy", "open_clip_torch", "sam2", "timm", "faiss-cpu", "hydra-core", "pytest"):
        try:
            info["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info["packages"][name] = "MISSING"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("env: CUDA is not available to torch on this machine")
        props = torch.cuda.get_device_properties(0)
        info["device_name"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}"
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            info["device_name"] += f", driver / max SM clock {smi}"
        except (OSError, subprocess.TimeoutExpired):
            pass
    else:
        info["device_name"] = "CPU"
    info["retrieval_backend"] = resolve_backend("auto", torch.device(device))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
