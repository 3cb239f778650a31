"""DINOv3.txt: the project's modules (timm DINOv3 + dinotxt_model.py) against golden outputs of the
authors' reference code (fixtures made by scripts/make_golden_fixtures.py, see fixtures/README.md),
and the wrapper's protocol (ImageNet statistics, patch-aligned text half, native-size support)."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones import build_backbone
from rns_ros.core.backbones.dense import IMAGENET_MEAN, IMAGENET_STD
from rns_ros.core.backbones.dinotxt import (DinoTxtBackbone, create_dinov3_vision, dinotxt_checkpoint_files,
                                            load_dinotxt_heads, load_dinov3_backbone)
from rns_ros.core.backbones.dinotxt_model import DinoTxtConfig, DinoTxtHeads
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES

FIXTURES = Path(__file__).parent / "fixtures"
BACKBONE_FILE = FIXTURES / "dinov3_tiny_pretrain_backbone.pth"
HEADS_FILE = FIXTURES / "dinov3_tiny_dinotxt_heads.pth"


@pytest.fixture(scope="module")
def golden():
    return torch.load(FIXTURES / "dinotxt_golden.pt", weights_only=True)


@pytest.fixture(scope="module")
def loaded(golden):
    """Our modules at the fixture's size, loaded from the reference state dicts (official names)."""
    vision = create_dinov3_vision(golden["vision"]).eval()
    heads = DinoTxtHeads(DinoTxtConfig(**golden["heads"])).eval()
    load_dinov3_backbone(vision, torch.load(BACKBONE_FILE, weights_only=True))
    load_dinotxt_heads(heads, torch.load(HEADS_FILE, weights_only=True))
    return vision, heads


def test_backbone_patch_tokens_match_reference(golden, loaded):
    vision, _ = loaded
    for crops, expect in zip(golden["crops"], golden["backbone_patch_tokens"]):
        with torch.no_grad():
            got = vision.forward_features(crops)[:, vision.num_prefix_tokens:]
        assert got.shape == expect.shape  # non-square 64 x 48 and a batch of two 32 x 32
        torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_text_embedding_matches_reference(golden, loaded):
    _, heads = loaded
    with torch.no_grad():
        got = heads.encode_text(golden["tokens"])
    torch.testing.assert_close(got, golden["text_embedding"], atol=1e-5, rtol=1e-5)


def test_vision_head_matches_reference(golden, loaded):
    vision, heads = loaded
    for crops, expect in zip(golden["crops"], golden["image_embedding"]):
        with torch.no_grad():
            got = heads.visual_model(vision.forward_features(crops), vision.num_prefix_tokens)
        torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_tokenizer_matches_reference(golden):
    from rns_ros.core.backbones.openclip import _clip_tokenizer

    ids = _clip_tokenizer(77)(golden["sentences"])
    assert torch.equal(ids.to(torch.int32), golden["token_ids"])  # includes a truncated long prompt


def test_loading_is_strict(golden, loaded):
    vision = create_dinov3_vision(golden["vision"])
    state = torch.load(BACKBONE_FILE, weights_only=True)
    del state["blocks.1.mlp.fc2.weight"]
    with pytest.raises(RuntimeError, match="fc2"):
        load_dinov3_backbone(vision, state)
    with pytest.raises(ValueError, match="DINOv3 backbone"):
        load_dinov3_backbone(vision, torch.load(HEADS_FILE, weights_only=True))
    heads = DinoTxtHeads(DinoTxtConfig(**golden["heads"]))
    with pytest.raises(ValueError, match="dino.txt heads"):
        load_dinotxt_heads(heads, torch.load(BACKBONE_FILE, weights_only=True))


def wrapper(golden, loaded) -> DinoTxtBackbone:
    from rns_ros.core.backbones.resolutions import DINOTXT_TINY_RESOLUTION

    vision, heads = loaded
    fake_tokenizer = lambda sentences: golden["tokens"][: len(sentences)]  # noqa: E731
    return DinoTxtBackbone(vision, heads, fake_tokenizer, identity="t", resolution=DINOTXT_TINY_RESOLUTION,
                           templates=("{}",))


def test_dense_features_use_imagenet_statistics(golden, loaded):
    backbone = wrapper(golden, loaded)
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # one window, no resize
    norm = (img / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    crop = torch.tensor(norm.transpose(2, 0, 1)[None], dtype=torch.float32)
    vision = loaded[0]
    with torch.no_grad():
        expect = F.normalize(vision.forward_features(crop)[0, 5:], dim=-1).reshape(4, 4, -1)
    torch.testing.assert_close(backbone.encode_image(img).features, expect, atol=1e-5, rtol=1e-4)


def test_text_features_are_the_patch_aligned_half(golden, loaded):
    backbone = wrapper(golden, loaded)
    got = backbone.encode_text(["x"])[0]  # one template; the fake tokenizer yields golden row 0
    torch.testing.assert_close(got, F.normalize(golden["text_embedding"][0, 32:], dim=0), atol=1e-5, rtol=1e-5)


def test_support_images_keep_their_size():
    tiny = build_backbone("test-tiny-dinotxt")
    img = np.random.default_rng(1).integers(0, 256, (40, 100, 3), dtype=np.uint8)
    assert tiny.encode_image(img).resized_size == (64, 160)  # test: short side 64
    support = tiny.encode_image(img, support=True)
    assert support.resized_size == (40, 100) and support.grid_size == (3, 7)
    assert "native" in tiny.identity and tiny.dim == 32
    assert len(IMAGENET_TEMPLATES) == len(tiny.templates)


def test_checkpoint_as_folder_or_pair(tmp_path):
    tiny = build_backbone("test-tiny-dinotxt", seed=3)
    torch.save(_official_backbone_names(tiny.vision.state_dict()), tmp_path / "dinov3_x_pretrain_y.pth")
    torch.save(tiny.heads.state_dict(), tmp_path / "dinov3_x_dinotxt_heads.pth")
    from_dir = build_backbone("test-tiny-dinotxt", checkpoint=str(tmp_path), seed=9)
    pair = f"{tmp_path / 'dinov3_x_pretrain_y.pth'},{tmp_path / 'dinov3_x_dinotxt_heads.pth'}"
    from_pair = build_backbone("test-tiny-dinotxt", checkpoint=pair, seed=9)
    img = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for other in (from_dir, from_pair):
        torch.testing.assert_close(other.encode_image(img).features, tiny.encode_image(img).features)
        torch.testing.assert_close(other.encode_text(["cat"]), tiny.encode_text(["cat"]))
    assert from_dir.identity == from_pair.identity and "file:dinov3_x_pretrain_y.pth" in from_dir.identity
    (tmp_path / "extra").mkdir()
    shutil.copy(tmp_path / "dinov3_x_dinotxt_heads.pth", tmp_path / "extra" / "dinotxt.pth")
    with pytest.raises(FileNotFoundError, match="pretrain"):
        dinotxt_checkpoint_files(tmp_path / "extra")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_backbone("test-tiny-dinotxt", checkpoint=f"{tmp_path / 'nope.pth'},{pair.split(',')[1]}")


def _official_backbone_names(timm_state: dict) -> dict:
    """timm names -> the official DINOv3 names (the inverse of timm's converter), so the test can
    write a file in the form Meta ships."""
    out = {}
    for k, v in timm_state.items():
        k2 = k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        if k2.endswith("attn.q_bias"):
            v_bias = timm_state[k.replace("q_bias", "v_bias")]
            out[k2.replace("q_bias", "qkv.bias")] = torch.cat([v, torch.zeros_like(v), v_bias])
            continue
        if k2.endswith("attn.v_bias"):
            continue
        out[k2] = v
    return out
