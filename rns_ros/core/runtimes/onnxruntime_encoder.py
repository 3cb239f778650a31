"""ONNX Runtime as a backbone's crop encoder: the CPU provider here, the CUDA and TensorRT providers
on a GPU (rns_ros.core.runtimes).

    encoder = OnnxRuntimeEncoder(exported, device=torch.device("cpu"), provider="cpu", precision="int8")
    features = encoder(crops)            # (B, 3, H, W) float32 -> (B, H/p, W/p, d) float32

- CPU: `intra_op_num_threads` = torch's thread count, one inter-op thread, and no spinning between
  operators (the ORT counterpart of OMP_WAIT_POLICY=PASSIVE, which the entry points set for torch:
  on a shared 2-core machine spinning threads steal the cores the work needs).
- CUDA: crops and features stay on the GPU (I/O binding to the torch tensors' memory).
- TensorRT: fp16 (or fp32) engines built by ONNX Runtime's TensorRT provider for one optimisation
  profile that covers every window the backbone's resolution makes (batch 1..max_batch, sides from
  one patch to the largest crop), cached on disk under the cache folder (`tensorrt/<sha16>/`), so a
  restart loads the engine instead of building it again (minutes on a Jetson).

A provider that is asked for must be the one that runs: ONNX Runtime itself falls back to the CPU
when a GPU provider fails to load; here that is an error naming the fix, never a silent fallback.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from rns_ros.core.runtimes.errors import RuntimeUnavailableError, import_runtime_package
from rns_ros.core.runtimes.exported import ExportedEncoder

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


class OnnxRuntimeEncoder:
    """`exported` run by ONNX Runtime; see the module docstring.

    Args:
        exported: the checked export (its file precision: fp32, int8 or fp16).
        device: where crops come from and features go (cpu, or cuda:N for the GPU providers).
        provider: "cpu", "cuda" or "tensorrt".
        precision: what the runtime computes in (tensorrt: "fp16" or "fp32"; else the file's).
        threads: CPU threads (the CPU provider; default torch's).
        engine_dir: TensorRT's engine and timing cache folder.
        profile: TensorRT's (min, opt, max) input shapes, each (B, 3, H, W).
    """

    name = "onnxruntime"

    def __init__(self, exported: ExportedEncoder, *, device: torch.device, provider: str, precision: str,
                 threads: int | None = None, engine_dir=None,
                 profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None) -> None:
        ort = import_runtime_package("onnxruntime", "onnxruntime")
        self.exported, self.device, self.provider, self.precision = exported, device, provider, precision
        self.name = "tensorrt" if provider == "tensorrt" else "onnxruntime"
        self.profile = profile
        wanted = PROVIDERS[provider]
        available = ort.get_available_providers()
        if wanted not in available:
            runtime_fix = ("{runtime=onnxruntime} (CPU provider) or {runtime=openvino}" if device.type == "cpu"
                           else "{runtime=torch}")
            raise RuntimeUnavailableError(
                f"runtime {self.name!r} needs ONNX Runtime's {wanted}, but this onnxruntime "
                f"({ort.__version__}) offers only {', '.join(available)}: on a CUDA machine install "
                f"onnxruntime-gpu (and, for TensorRT, its TensorRT libraries: docs/gpu.md), or use {runtime_fix}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's per-node placement notes are noise here
        if provider == "cpu":
            options.intra_op_num_threads = int(threads or torch.get_num_threads())
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [(wanted, self._provider_options(engine_dir))]
        if provider == "tensorrt":  # nodes TensorRT does not take run on CUDA, not on the CPU
            providers.append((PROVIDERS["cuda"], {"device_id": device.index or 0}))
        if provider != "cpu":
            providers.append(PROVIDERS["cpu"])  # only shape nodes ONNX Runtime keeps on the host
        try:
            self.session = ort.InferenceSession(str(exported.onnx_path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise RuntimeUnavailableError(f"ONNX Runtime could not load {str(exported.onnx_path)!r} with {wanted} "
                                          f"({type(exc).__name__}: {exc}); re-export it, or use {{runtime=torch}}") from None
        active = self.session.get_providers()
        if active[0] != wanted:
            raise RuntimeUnavailableError(
                f"ONNX Runtime did not start {wanted} (it runs {', '.join(active)}: see its log for why, "
                "often a missing CUDA/cuDNN/TensorRT library); refusing to fall back silently: fix the "
                "libraries (docs/gpu.md) or use {runtime=torch}")
        self._lock = threading.Lock()  # one run at a time per session binding

    def _provider_options(self, engine_dir) -> dict:
        if self.provider == "cpu":
            return {}
        options = {"device_id": self.device.index or 0}
        if self.provider == "tensorrt":
            engine_dir.mkdir(parents=True, exist_ok=True)
            shapes = ["x".join(str(v) for v in s) for s in self.profile]
            options.update({
                "trt_fp16_enable": self.precision == "fp16",
                "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engine_dir),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(engine_dir),
                "trt_profile_min_shapes": f"{self.exported.input}:{shapes[0]}",
                "trt_profile_opt_shapes": f"{self.exported.input}:{shapes[1]}",
                "trt_profile_max_shapes": f"{self.exported.input}:{shapes[2]}",
            })
        return options

    def describe(self) -> str:
        where = {"cpu": f"CPU, {self.session.get_session_options().intra_op_num_threads} threads",
                 "cuda": f"CUDA {self.device}", "tensorrt": f"TensorRT {self.device}"}[self.provider]
        return f"{self.name} {self.precision} ({where})"

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised crops on the backbone's device -> (B, H/p, W/p, d) float32 there."""
        b, _, h, w = crops.shape
        if self.profile is not None and not all(lo <= v <= hi for lo, v, hi in
                                                zip(self.profile[0], crops.shape, self.profile[2])):
            raise ValueError(f"window batch {tuple(crops.shape)} is outside the TensorRT profile "
                             f"{self.profile[0]}..{self.profile[2]} the engine was built for")
        crops = crops.detach().to(torch.float32).contiguous()
        with self._lock:
            if self.device.type == "cpu":
                out = self.session.run([self.exported.output], {self.exported.input: crops.numpy()})[0]
                return torch.from_numpy(out)
            p = self.exported.patch_size
            features = torch.empty((b, h // p, w // p, self.exported.dim), dtype=torch.float32, device=self.device)
            binding = self.session.io_binding()
            index = self.device.index or 0
            binding.bind_input(self.exported.input, "cuda", index, np.float32, tuple(crops.shape), crops.data_ptr())
            binding.bind_output(self.exported.output, "cuda", index, np.float32, tuple(features.shape),
                                features.data_ptr())
            torch.cuda.current_stream(self.device).synchronize()  # the crops are written before ORT reads
            self.session.run_with_iobinding(binding)  # returns once ORT's stream is done
            return features
