"""`rns-export` writes a folder the runtimes take, and `rns-segment` runs on it (`--runtime`,
`--onnx-model`), with the same labels as torch in fp32 and errors spelled as its flags."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rns_ros.cli import export as export_cli
from rns_ros.cli import segment as segment_cli
from rns_ros.core.runtimes.exported import ONNX_NAME, SIDECAR_NAME


def test_rns_export_writes_the_encoder_and_checks_it_against_torch(tmp_path, capsys):
    out = tmp_path / "onnx"
    assert export_cli.main(["--backbone", "test-tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (out / ONNX_NAME).is_file() and json.loads((out / SIDECAR_NAME).read_text())["preset"] == "test-tiny"
    cosine = float(text.split("cosine min ")[1].split(",")[0])
    assert cosine >= 0.9999, text
    assert f"--runtime RUNTIME --onnx-model {out}" in text and f"-p onnx_model:={out}" in text


def test_rns_export_refuses_a_bad_backbone_with_its_flags(tmp_path, capsys):
    assert export_cli.main(["--backbone", "no-such-model", "--out", str(tmp_path)]) == 2
    assert "unknown backbone 'no-such-model'" in capsys.readouterr().err


def test_rns_segment_on_an_exported_encoder_labels_as_torch(tmp_path, capsys):
    rgb = np.random.default_rng(4).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    onnx = tmp_path / "onnx"
    assert export_cli.main(["--backbone", "test-tiny", "--out", str(onnx)]) == 0
    labels = {}
    pytest.importorskip("openvino")
    for runtime in ("torch", "onnxruntime", "openvino"):
        out = tmp_path / runtime
        extra = ["--onnx-model", str(onnx)] if runtime != "torch" else []
        code = segment_cli.main([str(tmp_path / "a.png"), "--classes", "a,b,c", "--backbone", "test-tiny",
                                 "--steps", "10", "--runtime", runtime, "--out", str(out)] + extra)
        assert code == 0, capsys.readouterr().err
        assert f"runtime {runtime} (as set)" in capsys.readouterr().err
        assert json.loads((out / "classes.json").read_text())["runtime"] == runtime
        labels[runtime] = np.asarray(Image.open(out / "a_labels.png"))
    for runtime in ("onnxruntime", "openvino"):
        assert (labels[runtime] == labels["torch"]).mean() >= 0.999


def test_rns_segment_refuses_an_export_of_other_weights_naming_its_flags(tmp_path, capsys):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    onnx = tmp_path / "onnx"
    assert export_cli.main(["--backbone", "test-tiny", "--seed", "3", "--out", str(onnx)]) == 0
    code = segment_cli.main([str(tmp_path / "a.png"), "--classes", "a", "--backbone", "test-tiny",
                             "--runtime", "onnxruntime", "--onnx-model", str(onnx), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "random-seed3" in err and "--onnx-model DIR" in err and "build_backbone" not in err
    assert not (tmp_path / "o").exists()
