"""What the runtimes refuse, and how they say it (rns_ros.core.runtimes): a missing, corrupt or
mismatching ONNX file, a runtime asked for in a precision or on a device it does not run, a
provider or package that is not installed; every message names the fix as the entry point in use
spells it (rns_ros.core.advice). Also: the export's sidecar, the cache that exports once, and the
runtime the cpu-fast profile picks per CPU (logged, never a silent fallback)."""
from __future__ import annotations

import importlib.metadata
import json
import sys

import pytest
import torch

from rns_ros.core.advice import CLI_SPELLING, explain
from rns_ros.core.backbones import build_backbone
from rns_ros.core.profiles import get_profile
from rns_ros.core.runtimes import attach_runtime, check_runtime
from rns_ros.core.runtimes import export as export_module
from rns_ros.core.runtimes.errors import (ExportMismatchError, ExportMissingError, RuntimeSettingError,
                                          RuntimeUnavailableError)
from rns_ros.core.runtimes.export import cached_export, export_encoder
from rns_ros.core.runtimes.exported import ONNX_NAME, SIDECAR_NAME, file_sha256, read_export
from rns_ros.core.runtimes.onnxruntime_encoder import OnnxRuntimeEncoder

NODE_SPELLING = {name: f"-p {name}:={{value}}" for name in ("backbone", "checkpoint", "regions.checkpoint", "device",
                                                             "precision", "runtime", "onnx_model")}


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return export_encoder(build_backbone("test-tiny"), folder, preset="test-tiny")


def copy_export(exported, tmp_path):
    import shutil

    return shutil.copytree(exported.folder, tmp_path / "copy")


def test_the_sidecar_says_what_was_exported(tiny_export):
    backbone = build_backbone("test-tiny")
    data = json.loads((tiny_export.folder / SIDECAR_NAME).read_text())
    assert data["format"] == "rns_ros-dense-encoder/1" and data["preset"] == "test-tiny"
    assert data["model_identity"] == backbone.model_identity and data["identity"] == backbone.identity
    assert data["resolution"] == backbone.resolution.describe()
    assert tuple(data["mean"]) == backbone.mean and tuple(data["std"]) == backbone.std
    assert (data["patch_size"], data["dim"], data["precision"], data["opset"]) == (16, backbone.dim, "fp32", 18)
    onnx_file = tiny_export.folder / ONNX_NAME
    assert data["sha256"] == file_sha256(onnx_file) and data["bytes"] == onnx_file.stat().st_size
    assert data["versions"]["torch"] == importlib.metadata.version("torch")


def test_a_missing_folder_or_file_names_the_fix_for_each_entry_point(tmp_path, tiny_export):
    backbone = build_backbone("test-tiny")
    with pytest.raises(ExportMissingError) as err:
        attach_runtime(backbone, "onnxruntime", onnx_model=str(tmp_path / "nowhere"))
    assert "does not exist" in str(err.value) and "rns-export --backbone PRESET --out DIR" in str(err.value)
    assert "build_backbone(..., onnx_model='DIR')" in str(err.value)
    assert "--onnx-model DIR" in explain(err.value, CLI_SPELLING)
    assert "-p onnx_model:=DIR" in explain(err.value, NODE_SPELLING)
    folder = copy_export(tiny_export, tmp_path)
    (folder / ONNX_NAME).unlink()
    with pytest.raises(ExportMissingError, match="does not exist"):
        attach_runtime(backbone, "onnxruntime", onnx_model=str(folder))
    assert backbone.runtime is None  # nothing changed


def test_a_corrupt_file_or_sidecar_is_refused(tmp_path, tiny_export):
    pytest.importorskip("openvino")
    backbone = build_backbone("test-tiny")
    folder = copy_export(tiny_export, tmp_path)
    data = bytearray((folder / ONNX_NAME).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size: only the digest can tell
    (folder / ONNX_NAME).write_bytes(bytes(data))
    with pytest.raises(ExportMismatchError, match="sha256 differs"):
        attach_runtime(backbone, "openvino", onnx_model=str(folder))
    (folder / ONNX_NAME).write_bytes(bytes(data[:1000]))  # truncated
    with pytest.raises(ExportMismatchError, match="truncated or changed"):
        read_export(folder)
    (folder / SIDECAR_NAME).write_text("{not json")
    with pytest.raises(ExportMismatchError, match="not an rns_ros encoder sidecar"):
        read_export(folder)


def test_an_export_of_other_weights_or_precision_is_refused(tmp_path, tiny_export):
    other = build_backbone("test-tiny", seed=1)  # the same architecture, other weights
    with pytest.raises(ExportMismatchError) as err:
        attach_runtime(other, "onnxruntime", onnx_model=str(tiny_export.folder))
    text = explain(err.value, CLI_SPELLING)
    assert "random-seed0" in text and "random-seed1" in text and "--onnx-model DIR" in text
    with pytest.raises(ExportMismatchError, match="is fp32, this runtime needs a int8 file"):
        attach_runtime(build_backbone("test-tiny"), "onnxruntime", precision="int8",
                       onnx_model=str(tiny_export.folder))
    clip_mean = build_backbone("test-tiny-siglip2")  # another normalisation and family
    with pytest.raises(ExportMismatchError, match="exported from"):
        attach_runtime(clip_mean, "openvino", onnx_model=str(tiny_export.folder))


@pytest.mark.parametrize("runtime,precision,device,fix", [
    ("tensorrt", "fp16", "cpu", "{device=cuda}"),
    ("openvino", "fp32", "cuda", "{runtime=tensorrt}"),
    ("onnxruntime", "fp16", "cpu", "{device=cuda}"),
    ("onnxruntime", "bf16", "cpu", "{runtime=torch} or {runtime=openvino}"),
    ("openvino", "fp16", "cpu", "{runtime=torch} or {runtime=onnxruntime}"),
    ("torch", "fp16", "cpu", "{device=cuda}"),
])
def test_a_runtime_is_refused_where_it_does_not_run(runtime, precision, device, fix):
    with pytest.raises(RuntimeSettingError) as err:
        check_runtime(runtime, precision, device)
    assert fix in err.value.template
    with pytest.raises(RuntimeSettingError):  # build_backbone checks before building anything
        build_backbone("test-tiny", runtime=runtime, precision=precision, device=device)


def test_an_unknown_runtime_names_the_choices():
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow'; choose one of .*'openvino'"):
        check_runtime("tensorflow", "fp32", "cpu")


def test_tensorrt_asked_for_on_a_machine_without_it_names_the_fix(tiny_export):
    """This onnxruntime has no TensorRT provider (a CPU wheel): the encoder refuses before loading."""
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    with pytest.raises(RuntimeUnavailableError) as err:
        OnnxRuntimeEncoder(tiny_export, device=torch.device("cuda"), provider="tensorrt", precision="fp16",
                           profile=((1, 3, 16, 16), (1, 3, 64, 64), (4, 3, 64, 64)))
    text = explain(err.value, CLI_SPELLING)
    assert "TensorrtExecutionProvider" in text and "onnxruntime-gpu" in text and "docs/gpu.md" in text
    assert "--runtime torch" in text


def test_a_missing_runtime_package_names_the_extra(monkeypatch, tiny_export):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(RuntimeUnavailableError) as err:
        attach_runtime(build_backbone("test-tiny"), "openvino", onnx_model=str(tiny_export.folder))
    assert "pip install 'rns_ros[runtimes]'" in str(err.value) and "runtime='torch'" in str(err.value)


def test_the_cache_exports_once_and_lowers_precision_from_that_export(monkeypatch, tmp_path):
    monkeypatch.setenv("RNS_ROS_CACHE_DIR", str(tmp_path))
    backbone = build_backbone("test-tiny", seed=7)
    traced = []
    original = export_module._export_fp32
    monkeypatch.setattr(export_module, "_export_fp32", lambda *a: traced.append(1) or original(*a))
    first = cached_export(backbone, "fp32", preset="test-tiny")
    assert first.folder.parent == tmp_path / "onnx" and len(traced) == 1
    assert cached_export(backbone, "fp32", preset="test-tiny").folder == first.folder and len(traced) == 1
    int8 = cached_export(backbone, "int8", preset="test-tiny")  # from the cached fp32 file: no second trace
    assert int8.precision == "int8" and int8.folder != first.folder and len(traced) == 1
    assert int8.bytes < first.bytes
    other = cached_export(build_backbone("test-tiny", seed=8), "fp32", preset="test-tiny")
    assert other.folder != first.folder and len(traced) == 2  # other weights: another entry
    assert not [p for p in (tmp_path / "onnx").iterdir() if p.name.startswith(".")]  # no scratch left


def test_build_backbone_with_a_runtime_and_no_file_uses_the_cache(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="rns_ros.runtimes"):
        backbone = build_backbone("test-tiny", runtime="onnxruntime")
    assert backbone.runtime.describe().startswith("onnxruntime fp32 (CPU")
    assert backbone.precision == "fp32" and "onnxruntime fp32" in repr(backbone)
    assert any("dense encoder on onnxruntime fp32" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("amx,installed,expected,fallback", [
    (True, True, "openvino", False), (True, False, "torch", True), (False, True, "torch", False)])
def test_cpu_fast_picks_its_runtime_per_cpu_and_says_why(monkeypatch, amx, installed, expected, fallback):
    import importlib.util

    from rns_ros.core import profiles

    monkeypatch.setattr(profiles, "cpu_has_amx", lambda: amx)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" and not installed else real_find_spec(name, *a))
    profile = get_profile("cpu-fast")
    choice = profile.runtime_for("cpu")
    assert (choice.runtime, choice.fallback) == (expected, fallback)
    assert ("AMX" in choice.reason) and (("pip install 'rns_ros[runtimes]'" in choice.reason) == fallback)
    assert profile.runtime_for("cuda").runtime == "torch"
    assert profile.runtime_for("cpu", "onnxruntime").runtime == "onnxruntime"  # a set runtime wins
    assert get_profile("default").runtime_for("cpu").runtime == "torch"
    # the profile's bf16 applies only to runtimes that compute bf16
    monkeypatch.setattr(profiles, "cpu_has_native_bf16", lambda: True)
    assert profile.apply(device="cpu", runtime="openvino")[0] == "bf16"
    assert profile.apply(device="cpu", runtime="onnxruntime")[0] == "fp32"
    assert profile.apply(device="cuda", runtime="tensorrt")[0] == "fp16"  # TensorRT: fp16 for bf16
    assert profiles.Profile("gpu", "bf16 on a GPU", precision="bf16").precision_for("cuda", "onnxruntime") == "fp16"
