"""Runtimes: what computes a backbone's dense image encoder. An implementation detail of the
backbone, chosen by one setting; everything above it (windows, text, identity, the support memory,
the adapter) is unaware, and a memory taught under one runtime serves under another.

    backbone = build_backbone("openclip-vit-b16", runtime="openvino", precision="bf16")
    backbone.runtime.describe()        # 'openvino bf16 (CPU, 2 threads)'
    attach_runtime(backbone, "onnxruntime", precision="int8", onnx_model="/robot/onnx/vitb16-int8")

| runtime       | precisions          | device | computes with                                            |
|---------------|---------------------|--------|----------------------------------------------------------|
| `torch`       | fp32, bf16, fp16    | any    | the eager torch image tower (the default)                 |
| `onnxruntime` | fp32, int8 / fp16   | CPU / CUDA | ONNX Runtime's CPU provider (int8: dynamic quantization) or CUDA provider (fp16) |
| `tensorrt`    | fp16, fp32          | CUDA   | ONNX Runtime's TensorRT provider, engines cached on disk  |
| `openvino`    | fp32, bf16, int8    | CPU    | OpenVINO (bf16: AMX / AVX512-BF16; int8: NNCF's static quantization, openvino_int8.py) |

Every runtime but torch runs the ONNX export of the encoder (export.py): the folder given as
`onnx_model` (made by `rns-export`), checked against the backbone (exported.py), or, when none is
given, the backbone's own export, made once per machine into the cache (logged). Modules:
errors.py (errors naming the fix), exported.py (the files and their checks), export.py (torch ->
ONNX), onnxruntime_encoder.py, openvino_encoder.py, openvino_int8.py (OpenVINO's int8 model, made
once per machine from the fp32 file). Which runtime a profile picks on this CPU is
the profile's business (core/profiles.py, `Profile.runtime_for`).
"""
from __future__ import annotations

import logging

import torch

from rns_ros.core.cache import cache_dir
from rns_ros.core.runtimes.errors import (ExportMismatchError, ExportMissingError, RuntimeSettingError,
                                          RuntimeUnavailableError, import_runtime_package)

log = logging.getLogger("rns_ros.runtimes")

RUNTIMES = ("torch", "onnxruntime", "tensorrt", "openvino")
# runtime -> {precision: device types it runs on}
RUNTIME_PRECISIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "torch": {"fp32": ("cpu", "cuda"), "bf16": ("cpu", "cuda"), "fp16": ("cuda",)},
    "onnxruntime": {"fp32": ("cpu", "cuda"), "int8": ("cpu",), "fp16": ("cuda",)},
    "tensorrt": {"fp16": ("cuda",), "fp32": ("cuda",)},
    "openvino": {"fp32": ("cpu",), "bf16": ("cpu",), "int8": ("cpu",)},
}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")  # every precision some runtime computes in

__all__ = ["ExportMismatchError", "ExportMissingError", "PRECISIONS", "RUNTIMES", "RUNTIME_PRECISIONS",
           "RuntimeSettingError", "RuntimeUnavailableError", "attach_runtime", "check_runtime", "file_precision"]


def check_runtime(runtime: str, precision: str, device: str | torch.device) -> None:
    """Raise (naming the fix) unless `runtime` computes in `precision` on `device`. Cheap: imports
    no runtime package, so entry points call it before loading anything."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {list(RUNTIMES)}")
    kinds = RUNTIME_PRECISIONS[runtime]
    if precision not in kinds:
        others = [r for r in RUNTIMES if precision in RUNTIME_PRECISIONS[r]]
        raise RuntimeSettingError(
            f"runtime {runtime!r} computes in {', '.join(kinds)}, not {precision!r}: set "
            f"{{precision={next(iter(kinds))}}}" + (f", or a runtime that has {precision}: " + " or ".join(
                f"{{runtime={r}}}" for r in others) if others else ""))
    device_type = torch.device(device).type
    if device_type not in kinds[precision]:
        where = " or ".join({"cpu": "the CPU", "cuda": "a CUDA device"}[k] for k in kinds[precision])
        if runtime == "tensorrt":
            fix = "use {device=cuda} on a GPU machine, or {runtime=onnxruntime} / {runtime=openvino} on a CPU"
        elif runtime == "openvino":
            fix = "use {runtime=tensorrt} or {runtime=onnxruntime} on a CUDA device, or {device=cpu}"
        else:
            fix = f"use {{device={kinds[precision][0]}}}, or another precision ({', '.join(kinds)})"
        raise RuntimeSettingError(f"runtime {runtime!r} in {precision} runs on {where}, not on {device_type}: {fix}")


def file_precision(runtime: str, precision: str) -> str:
    """The precision of the ONNX file a runtime computing in `precision` reads: ONNX Runtime needs an
    int8 or fp16 file for those; TensorRT and OpenVINO lower an fp32 file themselves."""
    return precision if runtime == "onnxruntime" else "fp32"


def attach_runtime(backbone, runtime: str, *, precision: str = "fp32", onnx_model: str | None = None,
                   preset: str = "?") -> None:
    """Make `runtime` compute `backbone`'s crops from now on (`backbone.runtime`); "torch" detaches.

    `backbone`: a WindowedBackbone built in fp32 (its torch tower is what gets exported and what the
    runtime is checked against). `onnx_model`: a folder made by `rns-export` (or its encoder.onnx);
    None = the backbone's own export from the cache, made on first use. `preset` names the backbone
    in the sidecar and in error texts. Raises ValueError / ExportMissingError / ExportMismatchError /
    RuntimeUnavailableError, each naming the fix."""
    check_runtime(runtime, precision, backbone.device)
    if runtime == "torch":
        backbone.runtime = None
        return
    from rns_ros.core.runtimes.export import cached_export
    from rns_ros.core.runtimes.exported import read_export

    needed = file_precision(runtime, precision)
    if onnx_model:
        exported = read_export(onnx_model)
    else:
        import_runtime_package("onnxscript", runtime)  # the exporter, before a minute of work
        exported = cached_export(backbone, needed, preset=preset)
    exported.check_matches(backbone, needed)
    if runtime == "openvino":
        from rns_ros.core.runtimes.openvino_encoder import OpenVinoEncoder

        model_path = None
        if precision == "int8":  # quantized once per machine from the fp32 file (openvino_int8.py)
            from rns_ros.core.runtimes.openvino_int8 import cached_int8

            model_path = cached_int8(exported, backbone)
        encoder = OpenVinoEncoder(exported, precision=precision, compile_cache=cache_dir() / "openvino",
                                  model_path=model_path)
    else:
        from rns_ros.core.runtimes.onnxruntime_encoder import OnnxRuntimeEncoder

        provider = "tensorrt" if runtime == "tensorrt" else backbone.device.type
        encoder = OnnxRuntimeEncoder(
            exported, device=backbone.device, provider=provider, precision=precision,
            engine_dir=cache_dir() / "tensorrt" / exported.sha256[:16] if runtime == "tensorrt" else None,
            profile=tensorrt_profile(backbone) if runtime == "tensorrt" else None)
    backbone.runtime = encoder
    log.info("backbone %s: dense encoder on %s, from %s", backbone.model_identity, encoder.describe(),
             getattr(encoder, "model_path", None) or exported.onnx_path)


def tensorrt_profile(backbone) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) crop shapes covering every window `backbone.resolution` makes: batch 1 to
    max_batch, sides from one patch to the largest crop; optimised for one test window."""
    r, p = backbone.resolution, backbone.patch_size
    largest = max((r.test_crop,) + tuple(r.support_crops))
    test_rows = min(r.test_crop, -(-r.short_side // p) * p)
    return (1, 3, p, p), (1, 3, test_rows, r.test_crop), (r.max_batch, 3, largest, largest)
