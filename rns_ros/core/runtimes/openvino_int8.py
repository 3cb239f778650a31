"""Static int8 for OpenVINO: the exported fp32 encoder quantized after training with NNCF, once per
machine, and cached (rns_ros.core.runtimes).

    model_xml = cached_int8(exported, backbone)     # OpenVINO IR (encoder.xml + .bin) in the cache

What is quantized, and how (`RECIPE`, recorded with the model):
- NNCF's post-training quantization (`nncf.quantize`, model type TRANSFORMER): the weights of the
  matrix products int8 per output channel, their activations int8 per tensor with ranges taken from
  calibration crops; OpenVINO runs those products on AMX-INT8 / VNNI. What is not quantized runs
  in bf16 (the encoder compiles with the bf16 hint, as `openvino bf16` does).
- Kept out of int8: every weighted matrix product after the graph's last softmax (for OpenCLIP
  ViT-B/16: the output projection and MLP of block 11, the value-only last block and the dense
  projection; for the other families: the last block's output projection and MLP). That tail forms
  the features the retrieval compares; keeping it in bf16 measured 0.99984 against 0.99976 mean
  cosine with fp32 features (full-size random weights, the package's sample photos).
- No SmoothQuant (NNCF's default for transformers): on full-size random weights it lowered the mean
  cosine with fp32 from 0.99976 to 0.99966. It exists for trained transformers' activation
  outliers, which random weights do not have: with trained weights measure both (docs/backbones.md).
- Calibration: the windows this backbone's resolution makes (test protocol and support crops) of
  scikit-learn's two sample photos (`sklearn.datasets.load_sample_images`: shipped with
  scikit-learn, which NNCF installs) and their mirror images; not the package's own sample photos,
  on which rns-bench measures the agreement.

When the model is made, its features are compared with OpenVINO fp32's on the test windows of the
calibration photos; the mean cosine is logged and kept in `int8.json` beside the model.
Made in a scratch folder and renamed into place (a reader never sees half a model).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from rns_ros.core.backbones.sliding import multi_pass_features, sliding_window_features_batch
from rns_ros.core.cache import build_into, cache_dir, package_versions
from rns_ros.core.runtimes.errors import import_runtime_package
from rns_ros.core.runtimes.exported import ExportedEncoder

log = logging.getLogger("rns_ros.runtimes")

RECIPE = {"method": "nncf.quantize", "model_type": "transformer", "smooth_quant": False,
          "kept_in_bf16": "weighted MatMuls after the last Softmax",
          "calibration": "sklearn sample photos and their mirror images: test windows and support crops"}
MODEL_NAME = "encoder.xml"
INFO_NAME = "int8.json"


def calibration_images() -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB photos to calibrate on: scikit-learn's two sample photos and their mirrors."""
    datasets = import_runtime_package("sklearn.datasets", "openvino")
    photos = datasets.load_sample_images().images
    return [np.ascontiguousarray(p) for photo in photos for p in (photo, photo[:, ::-1])]


def calibration_crops(backbone, images: list[np.ndarray], *, support: bool = True) -> list[np.ndarray]:
    """The normalised (1, 3, h, w) float32 crops `backbone` encodes for `images`: the windows of its
    test protocol and (`support`) of its support protocol, as the runtime will see them."""
    crops: list[np.ndarray] = []
    p = backbone.patch_size

    def record(batch: torch.Tensor) -> torch.Tensor:
        crops.extend(np.ascontiguousarray(c[None].to(torch.float32).numpy()) for c in batch)
        return torch.zeros(batch.shape[0], batch.shape[2] // p, batch.shape[3] // p, 1)

    r = backbone.resolution
    with torch.no_grad():
        for image in images:
            padded, _ = backbone.preprocess(image)
            sliding_window_features_batch([padded], record, p, r.test_crop, r.test_stride, r.max_batch)
            if support:
                padded, _ = backbone.preprocess(image, support=True)
                multi_pass_features(padded, record, p, r.support_crops, r.support_stride, r.max_batch)
    return crops


def tail_matmuls(model) -> list[str]:
    """Names of the MatMuls with a weight (an input computed from constants alone) that come after
    the graph's last Softmax."""
    ops = list(model.get_ordered_ops())
    last_softmax = max((i for i, op in enumerate(ops) if op.get_type_name().startswith("Softmax")), default=-1)
    return [op.get_friendly_name() for op in ops[last_softmax + 1:]
            if op.get_type_name() == "MatMul" and any(_from_constants(port.get_source_output().get_node())
                                                      for port in op.inputs())]


def _from_constants(node) -> bool:
    """Whether `node` computes from constants alone (a weight reaching a MatMul through Slice,
    Transpose, Convert ...: ops whose inputs after the first are constant)."""
    while node.get_type_name() != "Constant":
        inputs = [port.get_source_output().get_node() for port in node.inputs()]
        if not inputs or any(other.get_type_name() != "Constant" for other in inputs[1:]):
            return False
        node = inputs[0]
    return True


def quantize(exported: ExportedEncoder, crops: list[np.ndarray]):
    """The OpenVINO model of `exported` with its matrix products in int8 per `RECIPE`, calibrated on `crops`."""
    ov = import_runtime_package("openvino", "openvino")
    nncf = import_runtime_package("nncf", "openvino")
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters)

    model = ov.Core().read_model(str(exported.onnx_path))
    no_smooth_quant = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))
    return nncf.quantize(model, nncf.Dataset(crops), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(crops), ignored_scope=nncf.IgnoredScope(names=tail_matmuls(model)),
                         advanced_parameters=no_smooth_quant)


def feature_cosine(quantized, exported: ExportedEncoder, crops: list[np.ndarray], threads: int) -> float:
    """Mean cosine between the quantized model's patch features and OpenVINO fp32's on `crops`."""
    ov = import_runtime_package("openvino", "openvino")
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads}
    reference = core.compile_model(core.read_model(str(exported.onnx_path)), "CPU",
                                   {**config, "INFERENCE_PRECISION_HINT": "f32"})
    tested = core.compile_model(quantized, "CPU", {**config, "INFERENCE_PRECISION_HINT": "bf16"})
    cosines = []
    for crop in crops:
        a, b = (torch.from_numpy(np.asarray(m(crop)[0], dtype=np.float32)) for m in (reference, tested))
        cosines.append(torch.nn.functional.cosine_similarity(a, b, dim=-1).flatten())
    return float(torch.cat(cosines).mean())


def cached_int8(exported: ExportedEncoder, backbone, *, threads: int | None = None) -> Path:
    """The int8 model (IR .xml) of `exported` for `backbone`'s windows, from the cache (rns_ros.core.cache),
    made there on first use (logged; ~30-50 s for ViT-B/16 on 2 CPU cores). Keyed by the fp32 file's
    sha256, the resolution (the calibration windows), the recipe and the versions of NNCF and OpenVINO."""
    versions = package_versions("nncf", "openvino")
    key = hashlib.sha256(json.dumps({"sha256": exported.sha256, "resolution": backbone.resolution.describe(),
                                     "recipe": RECIPE, "versions": versions}, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "openvino-int8" / f"{exported.sha256[:16]}-{key}"
    if (folder / INFO_NAME).is_file():
        return folder / MODEL_NAME
    ov = import_runtime_package("openvino", "openvino")
    log.info("no cached int8 model of %s for %s: quantizing it once into %s (ViT-B/16: ~30-50 s)",
             exported.model_identity, backbone.resolution.describe(), folder)
    started = time.perf_counter()
    images = calibration_images()
    crops = calibration_crops(backbone, images)
    quantized = quantize(exported, crops)
    cosine = feature_cosine(quantized, exported, calibration_crops(backbone, images[:2], support=False),
                            int(threads or torch.get_num_threads()))
    with build_into(folder, marker=INFO_NAME) as scratch:
        ov.save_model(quantized, str(scratch / MODEL_NAME), compress_to_fp16=False)
        (scratch / INFO_NAME).write_text(json.dumps({  # last: its presence marks a finished model
            "source_sha256": exported.sha256, "model_identity": exported.model_identity,
            "resolution": backbone.resolution.describe(), "recipe": RECIPE, "versions": versions,
            "calibration_crops": len(crops), "mean_cosine_vs_fp32": cosine}, indent=1) + "\n")
    log.info("quantized to int8 in %.0f s (%d calibration crops); patch features vs fp32: mean cosine %.5f",
             time.perf_counter() - started, len(crops), cosine)
    return folder / MODEL_NAME
