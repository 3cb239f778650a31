"""Every backbone preset: offline-buildable ones honour the protocol, the others fail fast offline."""
import socket
import time

import numpy as np
import pytest
import torch

from rns_ros.core.backbones import BACKBONE_PRESETS, build_backbone
from rns_ros.core.backbones.base import DenseBackbone, DenseFeatures
from rns_ros.core.backbones.weights import WeightsUnavailableError, checkpoint_fingerprint


def closed_local_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connecting is refused at once
    return port


@pytest.mark.parametrize("name", sorted(n for n, p in BACKBONE_PRESETS.items() if not p.needs_download))
def test_offline_preset_honours_the_protocol(name):
    backbone = build_backbone(name)
    assert BACKBONE_PRESETS[name].test_only == ("TEST-ONLY" in BACKBONE_PRESETS[name].description)
    assert isinstance(backbone, DenseBackbone)
    assert isinstance(backbone.identity, str) and backbone.identity
    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for support in (False, True):
        dense = backbone.encode_image(img, support=support)
        assert isinstance(dense, DenseFeatures)
        assert dense.image_size == (37, 53)
        h, w = dense.grid_size
        assert dense.padded_size == (h * backbone.patch_size, w * backbone.patch_size)
        assert all(0 <= dense.padded_size[i] - dense.resized_size[i] < backbone.patch_size for i in (0, 1))
        assert dense.features.shape == (h, w, backbone.dim) and dense.features.dtype == torch.float32
        assert dense.features.device == backbone.device
        torch.testing.assert_close(dense.features.norm(dim=-1), torch.ones(h, w))
    text = backbone.encode_text(["cat", "dog"])
    assert text.shape == (2, backbone.dim) and text.dtype == torch.float32
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize("name", sorted(n for n, p in BACKBONE_PRESETS.items() if p.needs_download))
def test_downloading_preset_fails_fast_when_offline(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        build_backbone(name, cache_dir=str(tmp_path))  # an empty cache
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"offline error took {elapsed:.1f} s"
    msg = str(err.value)  # the Python API's message names the API's argument, not a CLI flag
    assert "build_backbone(..., checkpoint='" in msg and "--checkpoint" not in msg
    if BACKBONE_PRESETS[name].hf_repo:
        assert "build_backbone(..., checkpoint='/path/" in msg and "build_backbone('test-tiny', ...)" in msg
        assert "HF_HUB_OFFLINE" in msg and "huggingface-cli download" in msg
    else:  # DINOv3.txt: no hub serves it; the message names the two official files
        assert "pretrain_lvd1689m" in msg and "dinotxt_vision_head_and_text_encoder" in msg
        assert "build_backbone('test-tiny-dinotxt', ...)" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_unreachable_hub_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_local_port()}")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="unreachable") as err:
        build_backbone("openclip-vit-b16", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    assert "checkpoint='/path/" in str(err.value)


def test_cached_weights_are_found_without_network(tmp_path, monkeypatch):
    """A file in the HF cache layout is used as is (here a stand-in file: we only check resolution)."""
    from rns_ros.core.backbones.weights import resolve_hub_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snap = tmp_path / "models--org--repo" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "open_clip_pytorch_model.bin").write_bytes(b"weights")
    (tmp_path / "models--org--repo" / "refs").mkdir()
    (tmp_path / "models--org--repo" / "refs" / "main").write_text("a" * 40)
    path = resolve_hub_weights("org/repo", cache_dir=str(tmp_path))
    assert path == str(snap / "open_clip_pytorch_model.bin")


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vit-huge")
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_backbone("test-tiny", pretrained="laion2b_s34b_b88k")
    with pytest.raises(ValueError, match="needs weights"):
        build_backbone("openclip:ViT-B-16")
    with pytest.raises(ValueError, match="no pretrained tag"):
        build_backbone("test-tiny-siglip2", pretrained="webli")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        build_backbone("openclip-vit-b16", checkpoint=str(tmp_path / "missing.bin"))


def test_fingerprint_depends_on_content_not_path(tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"x" * 1000)
    c.write_bytes(b"x" * 999 + b"y")
    fa, fb, fc = (checkpoint_fingerprint(p).split(":", 1)[1] for p in (a, b, c))
    assert fa == fb != fc
