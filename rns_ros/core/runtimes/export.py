"""Export a backbone's dense image encoder to ONNX: exactly `crop_features`, the computation the
torch backbone runs on every window (OpenCLIP: the tower up to its last block, the value-only last
block, ln_post, projection; DINOv3.txt: the last layer's normed patch tokens; SigLIP2: the MAP
head's value path per patch), positional embeddings resized inside the graph.

    exported = export_encoder(backbone, "/robot/onnx/vitb16", preset="openclip-vit-b16")
    exported = cached_export(backbone, "fp32", preset=...)   # the same, once per machine, in the cache

The graph: input "crops" (B, 3, H, W) float32 normalised crops, output "features"
(B, H/p, W/p, d) float32 (not normalised; the backbone normalises, as for torch). Batch, H and W
are dynamic (any multiple of the patch), so one file serves every window size of every resolution.
It is traced from the fp32 torch model (torch.onnx.export with the dynamo exporter, opset 18, the
exporter's own: converted down to 17, DINOv3's RoPE split became an invalid graph; TensorRT reads
opset 18 from 10.0 on, JetPack 6.1's 10.3 included); precisions below fp32 are made from that file:

- "int8": ONNX Runtime's dynamic quantization (weights int8 per output channel, activations
  quantized per call; MatMulInteger runs on VNNI / AMX-INT8), for ONNX Runtime on a CPU.
- "fp16": ONNX Runtime's float16 conversion with float32 inputs and outputs, for its CUDA provider.
  (TensorRT and OpenVINO read the fp32 file and lower the precision themselves.)

Writing is atomic: the ONNX file and the sidecar go to temporary names and are renamed into place,
the sidecar last, and `read_export` checks the file's sha256 against the sidecar's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from rns_ros.core.cache import build_into, cache_dir, package_versions
from rns_ros.core.runtimes.exported import (FORMAT, INPUT_NAME, ONNX_NAME, OUTPUT_NAME, ExportedEncoder,
                                            file_sha256, read_export, write_sidecar)

log = logging.getLogger("rns_ros.runtimes")

OPSET = 18
FILE_PRECISIONS = ("fp32", "int8", "fp16")
MAX_GRID = 256  # largest window side the export declares, in patches (4096 px at patch 16)


class DenseEncoder(torch.nn.Module):
    """`backbone.crop_features` as a module whose parameters are the image tower's (what is exported)."""

    def __init__(self, backbone) -> None:
        super().__init__()
        self.tower = backbone.image_tower
        self._crop_features = backbone.crop_features

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self._crop_features(crops)


def export_encoder(backbone, out_dir: str | os.PathLike, *, precision: str = "fp32", preset: str = "?",
                   opset: int = OPSET, fp32_export: ExportedEncoder | None = None) -> ExportedEncoder:
    """Write `encoder.onnx` + `encoder.json` of `backbone`'s dense encoder into `out_dir` (created).

    `backbone`: a WindowedBackbone built in fp32 with the torch runtime. `fp32_export`: an fp32
    export of the same backbone to lower to `precision` instead of tracing again. Raises ValueError
    for another precision, ImportError (naming the extra) when the exporter's packages are missing."""
    if precision not in FILE_PRECISIONS:
        raise ValueError(f"export precision must be one of {FILE_PRECISIONS}, got {precision!r}")
    assert fp32_export is None or precision != "fp32", "fp32_export is a source to lower, not a copy"
    tower_dtype = next(backbone.image_tower.parameters()).dtype
    if backbone.precision != "fp32" or tower_dtype != torch.float32 or backbone.runtime is not None:
        raise ValueError(f"export needs the backbone built in fp32 with the torch runtime (got precision "
                         f"{backbone.precision}, weights {tower_dtype}, runtime "
                         f"{backbone.runtime.describe() if backbone.runtime else 'torch'}); the runtime lowers "
                         "the precision itself")
    _require("onnx", "onnxscript", *(("onnxruntime",) if precision != "fp32" else ()))
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as scratch:
        if fp32_export is not None:
            fp32_export.check_matches(backbone, "fp32")
            fp32_file, opset = fp32_export.onnx_path, fp32_export.opset
        else:
            fp32_file = Path(scratch) / "fp32.onnx"
            _export_fp32(backbone, fp32_file, opset)
        final = fp32_file if precision == "fp32" else Path(scratch) / f"{precision}.onnx"
        if precision == "int8":
            _quantize_int8(fp32_file, final)
        elif precision == "fp16":
            _convert_fp16(fp32_file, final)
        exported = ExportedEncoder(
            preset=preset, identity=backbone.identity, model_identity=backbone.model_identity,
            resolution=backbone.resolution.describe(), mean=backbone.mean, std=backbone.std,
            patch_size=backbone.patch_size, dim=backbone.dim, precision=precision, opset=opset,
            sha256=file_sha256(final), bytes=final.stat().st_size, versions=_versions())
        final.replace(out / ONNX_NAME)
        write_sidecar(exported, out)
    log.debug("exported the %s dense encoder of %s to %s in %.0f s", precision, preset, out,
              time.perf_counter() - started)
    return read_export(out, verify=False)


def cached_export(backbone, precision: str, *, preset: str = "?") -> ExportedEncoder:
    """The export of `backbone` at file precision `precision` from the cache (rns_ros.core.cache),
    made there on first use (logged: ~20 s for ViT-B/16 on 2 CPU cores). Keyed by the weights'
    identity, normalisation, precision, opset and the exporter's versions."""
    key = hashlib.sha256(json.dumps({
        "format": FORMAT, "model_identity": backbone.model_identity, "mean": backbone.mean, "std": backbone.std,
        "patch": backbone.patch_size, "dim": backbone.dim, "precision": precision, "opset": OPSET,
        "versions": _versions()}, sort_keys=True).encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in preset)
    folder = cache_dir() / "onnx" / f"{name}-{precision}-{key}"
    if (folder / ONNX_NAME).is_file():
        return read_export(folder)
    log.info("no cached ONNX export of %s (%s, %s): exporting it once into %s (ViT-B/16: ~20-40 s)", preset,
             backbone.model_identity, precision, folder)
    started = time.perf_counter()
    # int8 / fp16 are lowered from the cached fp32 export (made first if need be): one trace per machine
    source = cached_export(backbone, "fp32", preset=preset) if precision != "fp32" else None
    with build_into(folder, marker=ONNX_NAME) as scratch:
        export_encoder(backbone, scratch, precision=precision, preset=preset, fp32_export=source)
    log.info("exported in %.0f s", time.perf_counter() - started)
    return read_export(folder)


def _export_fp32(backbone, path: Path, opset: int) -> None:
    p = backbone.patch_size
    module = DenseEncoder(backbone).eval()
    # An example grid unlike any model's native one (so no branch "grid == native grid" is taken).
    example = torch.zeros(2, 3, 5 * p, 7 * p, device=backbone.device)
    batch = torch.export.Dim("batch", min=1, max=1024)
    rows, cols = torch.export.Dim("rows", min=1, max=MAX_GRID), torch.export.Dim("cols", min=1, max=MAX_GRID)
    with torch.no_grad():
        program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"crops": {0: batch, 2: p * rows, 3: p * cols}})
    program.save(str(path), external_data=False)


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def _convert_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))


def _versions() -> dict:
    return package_versions("torch", "onnx", "onnxscript", "onnxruntime")


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"exporting to ONNX needs {', '.join(missing)}: pip install 'rns_ros[runtimes]' "
                          "(scripts/setup.sh installs it)")
