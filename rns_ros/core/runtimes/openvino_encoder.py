"""OpenVINO as a backbone's crop encoder, on the CPU (rns_ros.core.runtimes).

    encoder = OpenVinoEncoder(exported, precision="bf16")
    features = encoder(crops)            # (B, 3, H, W) float32 -> (B, H/p, W/p, d) float32

OpenVINO reads the fp32 ONNX file and compiles it for this CPU. `precision` is its inference
precision hint: "bf16" runs the matrix products in bfloat16 (AMX tiles or AVX512-BF16; OpenVINO
already picks bf16 by default on CPUs with AMX, so "fp32" asks for f32 explicitly), "fp32" keeps
float32 throughout; "int8" reads `model_path`, the int8 model quantized from that file
(openvino_int8.py), and runs what it leaves in float in bf16. One stream, `INFERENCE_NUM_THREADS` = torch's thread count, the latency hint,
and threads not pinned to cores (a robot's CPU is shared with its other processes).

Shapes: the model compiled with its dynamic batch and window size serves every call; a crop shape
seen a second time (a camera's frames: one window shape per frame size) gets a model compiled for
exactly that shape, which OpenVINO runs faster (up to `static_shapes` of them, least recently used
dropped). Compiled blobs are cached under the cache folder (`openvino/`), so a restart skips most
of the compilation.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from rns_ros.core.runtimes.errors import import_runtime_package
from rns_ros.core.runtimes.exported import ExportedEncoder

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}  # int8: what the quantized model leaves in float runs in bf16


class OpenVinoEncoder:
    """`exported` compiled by OpenVINO for the CPU; see the module docstring."""

    name = "openvino"

    def __init__(self, exported: ExportedEncoder, *, precision: str, threads: int | None = None,
                 compile_cache: Path | None = None, static_shapes: int = 8, model_path: Path | None = None) -> None:
        ov = import_runtime_package("openvino", "openvino")
        self.exported, self.precision, self.static_shapes = exported, precision, int(static_shapes)
        self.model_path = model_path  # None: the ONNX file itself
        self.threads = int(threads or torch.get_num_threads())
        self._core = ov.Core()
        if compile_cache is not None:
            compile_cache.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(compile_cache)})
        self._config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": self.threads,
                        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        self._model = self._core.read_model(str(model_path or exported.onnx_path))
        self._dynamic = self._core.compile_model(self._model, "CPU", self._config).create_infer_request()
        self._static: OrderedDict[tuple[int, ...], object] = OrderedDict()  # shape -> infer request
        self._seen: set[tuple[int, ...]] = set()
        self._lock = threading.Lock()  # an infer request serves one call at a time

    def describe(self) -> str:
        return f"openvino {self.precision} (CPU, {self.threads} threads)"

    def _request_for(self, shape: tuple[int, ...]):
        if shape in self._static:
            self._static.move_to_end(shape)
            return self._static[shape]
        if shape not in self._seen or self.static_shapes <= 0:
            self._seen.add(shape)
            return self._dynamic
        model = self._model.clone()
        model.reshape({self.exported.input: list(shape)})
        self._static[shape] = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        if len(self._static) > self.static_shapes:
            self._static.popitem(last=False)
        return self._static[shape]

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised CPU crops -> (B, H/p, W/p, d) float32."""
        crops = np.ascontiguousarray(crops.detach().to(torch.float32).numpy())
        with self._lock:
            out = self._request_for(tuple(crops.shape)).infer({self.exported.input: crops})
            return torch.from_numpy(np.array(out[self.exported.output], dtype=np.float32))
