"""Named profiles (rns_ros.core.profiles): what `cpu-fast` and `cuda` set, that they only fill
settings left at their defaults, that `auto` picks `cuda` on a GPU and says so, that cpu-fast's
resolution really runs one window per frame, and that the command line applies it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rns_ros.cli import segment as cli
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.backbones import build_backbone
from rns_ros.core.backbones.sliding import resized_size, window_starts
from rns_ros.core.profiles import NATIVE_BF16, PROFILE_NAMES, get_profile, resolve_profile
from rns_ros.core.regions.proposals import ProposalConfig


def test_unknown_profile_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="cpu-fast"):
        get_profile("cpu-slow")


def test_auto_is_cuda_on_a_gpu_and_default_elsewhere_and_says_so():
    assert PROFILE_NAMES[0] == "auto" and {"default", "cuda", "cpu-fast"} <= set(PROFILE_NAMES)
    profile, note = resolve_profile("auto", "cuda:1")
    assert profile.name == "cuda" and note.startswith("profile auto -> cuda on cuda:1") and "profile:=default" in note
    profile, note = resolve_profile("auto", torch.device("cpu"))
    assert profile.name == "default" and note.startswith("profile auto -> default on cpu")
    for name in ("default", "cpu-fast", "cuda"):  # a named profile wins, on any device
        assert resolve_profile(name, "cuda") == (get_profile(name), None)
    with pytest.raises(ValueError, match="auto"):
        get_profile("auto")  # needs a device


def test_cuda_profile_is_bf16_models_with_an_exact_adapter():
    profile = get_profile("cuda")
    assert profile.resolution is None and profile.tf32
    assert profile.apply(device="cuda") == ("bf16", AdapterConfig())  # 700 exact fp32 steps, as the paper
    assert profile.apply(device="cuda", precision="fp16") == ("fp16", AdapterConfig())
    assert profile.apply_proposals(ProposalConfig()) == ProposalConfig(precision="bf16")
    kept = ProposalConfig(precision="fp16", points_per_side=16)
    assert profile.apply_proposals(kept) == kept  # an explicit SAM 2 precision wins
    assert get_profile("default").apply_proposals(kept) == kept


def test_cuda_profile_turns_tf32_on_for_cuda_only():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    try:
        matmul.fp32_precision = "none"
        assert get_profile("cuda").apply_device_settings("cpu") is None and matmul.fp32_precision == "none"
        assert get_profile("default").apply_device_settings("cuda") is None and matmul.fp32_precision == "none"
        assert "TF32 on" in get_profile("cuda").apply_device_settings("cuda:0") and matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = before


def test_default_profile_changes_nothing():
    profile = get_profile("default")
    assert profile.resolution is None
    assert profile.apply(device="cpu") == ("fp32", AdapterConfig())
    assert profile.adapter_config(seed=3) == AdapterConfig(seed=3)


@pytest.mark.parametrize("width,height", [(640, 480), (1280, 720), (480, 640), (2000, 900)])
def test_cpu_fast_encodes_one_window_at_short_side_224(width, height):
    resolution = get_profile("cpu-fast").resolution
    resolution.validate(16)  # ViT-B/16's patch grid
    h, w = resized_size((height, width), resolution.short_side, resolution.max_long_side)
    assert min(h, w) == 224 or max(h, w) == resolution.max_long_side
    padded = (-(-h // 16) * 16, -(-w // 16) * 16)
    assert [len(window_starts(n, resolution.test_crop, resolution.test_stride)) for n in padded] == [1, 1]


def test_cpu_fast_fills_only_settings_left_at_their_defaults(monkeypatch):
    profile = get_profile("cpu-fast")
    precision, adapter = profile.apply(device="cuda")
    assert precision == "bf16" and (adapter.steps, adapter.lr) == (140, 0.01)
    assert adapter == AdapterConfig(steps=140, lr=0.01)  # nothing else changes
    precision, adapter = profile.apply(device="cpu", precision="fp16", adapter=AdapterConfig(steps=50, seed=4))
    assert precision == "fp16" and (adapter.steps, adapter.lr, adapter.seed) == (50, 0.01, 4)
    assert profile.adapter_config(steps=70).steps == 70


@pytest.mark.parametrize("amx,avx512_bf16,expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                     (False, False, "fp32")])
def test_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    profile = get_profile("cpu-fast")
    assert profile.precision == NATIVE_BF16
    assert profile.precision_for("cpu") == expected and profile.precision_for("cuda:0") == "bf16"
    assert profile.apply(device="cpu")[0] == expected


def test_cpu_fast_backbone_runs_one_window_per_frame():
    """The tiny model under the profile's resolution: a 640x480 frame is one encoder call on one
    224x304 crop, giving the 14x19 patch grid."""
    profile = get_profile("cpu-fast")
    backbone = build_backbone("test-tiny", resolution=profile.resolution)
    crops = []
    original = backbone.encode_crops
    backbone.encode_crops = lambda batch: crops.append(tuple(batch.shape)) or original(batch)
    dense = backbone.encode_image(np.zeros((480, 640, 3), np.uint8))
    assert crops == [(1, 3, 224, 304)] and tuple(dense.features.shape[:2]) == (14, 19)
    assert "S224" in backbone.identity  # a memory taught under another resolution is re-encoded


def test_rns_segment_applies_the_profile_and_lets_options_win(tmp_path, capsys):
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    for extra, steps in (([], 140), (["--steps", "700"], 700)):
        out = tmp_path / f"out{steps}"
        code = cli.main([str(tmp_path / "a.png"), "--classes", "red,blue", "--backbone", "test-tiny",
                         "--profile", "cpu-fast", "--out", str(out), *extra])
        assert code == 0, capsys.readouterr().err
        meta = json.loads((out / "classes.json").read_text())
        assert meta["profile"] == "cpu-fast" and meta["steps"] == steps and "S224" in meta["backbone"]
