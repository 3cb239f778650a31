"""The runtimes compute what torch computes (rns_ros.core.runtimes).

fp32: the exported encoder under ONNX Runtime and OpenVINO against the torch backbone's own
`crop_features` on the same random weights, for every family (OpenCLIP, DINOv3.txt, SigLIP2) and
window shapes of several sizes and aspect ratios, batched or not (patch features cosine >= 0.9999);
and the labels of the whole segmenter (same classes, same exemplars, photos of several sizes)
identical on >= 99.9 % of the pixels.

Reduced precision (OpenVINO bf16, ONNX Runtime int8, OpenVINO int8) is measured against the fp32
labels, with torch bf16, what the cpu-fast profile computed before the runtimes, as the yardstick:
OpenVINO bf16 must agree at least as well as torch bf16 up to 0.5 point (both round the same matrix
products to bf16's 8-bit mantissa, in other orders), the int8 ones up to 1.5 points (ONNX Runtime:
int8 weights per output channel and int8 activations per call; OpenVINO: NNCF's static int8, the
activations' ranges calibrated once: both lose a little more than bf16), and all >= 98 %. On these
tiny random models torch bf16 agrees on about 99.5 %, OpenVINO bf16 99.7 %, ONNX Runtime int8
99.3 %, OpenVINO int8 98.7 %; the full ViT-B/16's numbers are in docs/backbones.md ("Runtimes").
"""
from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch
from PIL import Image

from rns_ros.core import AdapterConfig, Segmenter, SupportMemory, TestTimeAdapter, build_backbone
from rns_ros.core.profiles import cpu_has_native_bf16
from rns_ros.core.runtimes import attach_runtime, file_precision
from rns_ros.core.runtimes.export import export_encoder

FAMILIES = ("test-tiny", "test-tiny-dinotxt", "test-tiny-siglip2")
# (batch, height, width): the native 64x64, wider and narrower than native (positional embeddings
# resampled up and down), a batch of mixed content, and one large window
SHAPES = ((1, 64, 64), (3, 64, 96), (2, 32, 48), (1, 112, 224))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """fp32 export of each family, and the int8 one of test-tiny (each made once for the module)."""
    made = {}
    for name in FAMILIES:
        made[name, "fp32"] = export_encoder(build_backbone(name), tmp_path_factory.mktemp(name), preset=name)
    made["test-tiny", "int8"] = export_encoder(build_backbone("test-tiny"), tmp_path_factory.mktemp("int8"),
                                               precision="int8", preset="test-tiny",
                                               fp32_export=made["test-tiny", "fp32"])
    return made


def with_runtime(name: str, runtime: str, precision: str, exports) -> object:
    pytest.importorskip(runtime)  # the `runtimes` extra (scripts/setup.sh installs it); a GPU image may lack one
    if runtime == "openvino" and precision == "int8":
        pytest.importorskip("nncf")
    backbone = build_backbone(name)
    attach_runtime(backbone, runtime, precision=precision,
                   onnx_model=str(exports[name, file_precision(runtime, precision)].folder))
    return backbone


def fp32_bound(name: str, runtime: str, grid: tuple[int, int]) -> float:
    """0.9999, except one measured deviation: SigLIP2's windows smaller than its native grid (timm
    resamples the positional embeddings with antialiasing: ONNX Resize with antialias=1, which
    ONNX Runtime computes as torch does and OpenVINO slightly differently: cosine >= 0.99995 here)."""
    if name == "test-tiny-siglip2" and runtime == "openvino" and min(grid) < 4:  # native: 4 x 4
        return 0.9995
    return 0.9999


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fp32_runtimes_give_the_torch_patch_features(name, runtime, exports):
    reference = build_backbone(name)
    backbone = with_runtime(name, runtime, "fp32", exports)
    assert backbone.identity == reference.identity  # a memory taught under torch serves as it is
    generator = torch.Generator().manual_seed(3)
    for b, h, w in SHAPES:
        crops = torch.randn(b, 3, h, w, generator=generator)
        expected = reference.encode_crops(crops)
        got = backbone.encode_crops(crops)
        assert got.shape == expected.shape == (b, h // 16, w // 16, reference.dim)
        cosine = (got * expected).sum(-1)
        assert float(cosine.min()) >= fp32_bound(name, runtime, (h // 16, w // 16)), (name, runtime, (b, h, w))
    # and through the windows of a whole image (the support protocol's 32 px crops: a 2 x 2 grid)
    image = np.random.default_rng(5).integers(0, 256, (90, 150, 3), dtype=np.uint8)
    for support in (False, True):
        a = reference.encode_image(image, support=support).features
        b = backbone.encode_image(image, support=support).features
        assert float((a * b).sum(-1).min()) >= fp32_bound(name, runtime, (2, 2) if support else (4, 4))


def photos() -> list[np.ndarray]:
    folder = files("rns_ros.ros.demo") / "sample_images"
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.iterdir(), key=lambda p: p.name)
              if p.name.endswith(".jpg")]
    return images + [np.asarray(Image.fromarray(i).resize((200, 90))) for i in images]  # and another aspect


def segment_photos(backbone) -> list[np.ndarray]:
    """Labels of every photo under 5 classes with text and one exemplar per photo (two classes
    each): the same memory content for every backbone it is given."""
    memory = SupportMemory(dim=backbone.dim, backbone_identity=backbone.identity)
    segmenter = Segmenter(backbone, memory, TestTimeAdapter(AdapterConfig(seed=0, steps=50)), mode="patch")
    for i in range(5):
        segmenter.add_class(f"class {i}")
    images = photos()
    for j, image in enumerate(images[:3]):
        labels = np.zeros(image.shape[:2], np.int32)
        h, w = labels.shape
        labels[: h // 2, : w // 2] = 1 + j
        labels[h // 2:, w // 2:] = 4 + j % 2
        segmenter.add_exemplar(image, labels)
    return [segmenter.segment(image).labels for image in images]


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return sum(int((x == y).sum()) for x, y in zip(a, b)) / sum(x.size for x in a)


@pytest.fixture(scope="module")
def fp32_labels():
    return segment_photos(build_backbone("test-tiny"))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fp32_runtimes_label_like_torch_through_the_whole_segmenter(runtime, exports, fp32_labels, one_torch_thread):
    labels = segment_photos(with_runtime("test-tiny", runtime, "fp32", exports))
    assert agreement(fp32_labels, labels) >= 0.999


@pytest.mark.parametrize("runtime,precision,slack", [("openvino", "bf16", 0.005), ("onnxruntime", "int8", 0.015),
                                                     ("openvino", "int8", 0.015)])
def test_reduced_precision_agrees_with_fp32_about_as_well_as_torch_bf16(runtime, precision, slack, exports,
                                                                        fp32_labels, one_torch_thread):
    yardstick = agreement(fp32_labels, segment_photos(build_backbone("test-tiny", precision="bf16")))
    measured = agreement(fp32_labels, segment_photos(with_runtime("test-tiny", runtime, precision, exports)))
    print(f"agreement with fp32 labels: torch bf16 {100 * yardstick:.2f} %, {runtime} {precision} "
          f"{100 * measured:.2f} %")
    assert measured >= yardstick - slack and measured >= 0.98, (measured, yardstick)
    if precision == "int8" or cpu_has_native_bf16():  # (OpenVINO runs bf16 only where the CPU has it)
        assert measured < 1.0  # reduced precision really ran (an fp32 path would agree exactly)
