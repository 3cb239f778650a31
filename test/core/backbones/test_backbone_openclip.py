"""OpenCLIP dense features (RNS MaskCLIP variant) checked against the model's own layers."""
import copy
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones import build_backbone
from rns_ros.core.backbones.base import DenseBackbone
from rns_ros.core.backbones.openclip import (CLIP_MEAN, CLIP_STD, resize_positional_embedding,
                                             value_only_block)
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES


@pytest.fixture(scope="module")
def tiny():
    return build_backbone("test-tiny", seed=0)


def self_only_mask(n):
    """Attention mask letting each token attend only to itself: softmax is then the identity,
    so attention output = out_proj(value(x)), i.e. exactly the value-only path."""
    mask = torch.full((n, n), float("-inf"))
    mask.fill_diagonal_(0.0)
    return mask


def own_layers_dense(visual, crops):
    """Dense features from the model's own forward pieces: its _embeds (native positional
    embedding), its blocks, its last block run with a self-only attention mask, ln_post, proj."""
    x = visual._embeds(crops)
    for blk in visual.transformer.resblocks[:-1]:
        x = blk(x)
    x = visual.transformer.resblocks[-1](x, attn_mask=self_only_mask(x.shape[1]))
    x = visual.ln_post(x)[:, 1:] @ visual.proj
    gh, gw = crops.shape[2] // 16, crops.shape[3] // 16
    return F.normalize(x, dim=-1).reshape(crops.shape[0], gh, gw, -1)


def cubic_weights(t, a=-0.75):
    """Keys cubic-convolution weights for the 4 taps at offsets -1, 0, 1, 2 (torch's A = -0.75)."""
    def k(x):
        x = abs(x)
        if x <= 1:
            return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
        if x < 2:
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
        return 0.0
    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def bicubic_matrix(n_in, n_out):
    """(n_out, n_in) bicubic resampling matrix, align_corners=False, border indices clamped."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = (o + 0.5) * n_in / n_out - 0.5
        i0 = int(np.floor(src))
        for tap, wgt in zip(range(i0 - 1, i0 + 3), cubic_weights(src - i0)):
            m[o, min(max(tap, 0), n_in - 1)] += wgt
    return m


def test_value_only_block_equals_self_attending_block(tiny):
    block = tiny.model.visual.transformer.resblocks[-1]
    x = torch.randn(2, 13, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expect = block(x, attn_mask=self_only_mask(13))
        got = value_only_block(block, x)
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and it really differs from full attention (tokens do mix there)
        assert not torch.allclose(block(x), got, atol=1e-3)


def test_value_only_block_from_submodules_by_hand(tiny):
    block = tiny.model.visual.transformer.resblocks[-1]
    x = torch.randn(1, 5, 64, generator=torch.Generator().manual_seed(1))
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    ln = lambda m, t: F.layer_norm(t, (64,), m.weight, m.bias, m.eps)  # noqa: E731
    v = ln(block.ln_1, x) @ w[128:].T + b[128:]
    v1 = x + v @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
    hidden = F.gelu(ln(block.ln_2, v1) @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias)
    expect = v1 + hidden @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    with torch.no_grad():
        torch.testing.assert_close(value_only_block(block, x), expect, atol=1e-5, rtol=1e-5)


def test_positional_embedding_resize_is_bicubic_and_keeps_class_token():
    pos = torch.randn(1 + 4 * 4, 8, generator=torch.Generator().manual_seed(2))
    out = resize_positional_embedding(pos, (4, 4), (6, 3))
    assert out.shape == (1 + 18, 8)
    assert torch.equal(out[0], pos[0])
    grid = pos[1:].reshape(4, 4, 8).numpy().astype(np.float64)
    expect = np.einsum("oi,ijc,pj->opc", bicubic_matrix(4, 6), grid, bicubic_matrix(4, 3))
    np.testing.assert_allclose(out[1:].reshape(6, 3, 8).numpy(), expect, atol=1e-5)
    assert resize_positional_embedding(pos, (4, 4), (4, 4)) is pos


def test_dense_features_at_native_grid_match_own_layers(tiny):
    crops = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expect = own_layers_dense(tiny.model.visual, crops)
    torch.testing.assert_close(tiny.encode_crops(crops), expect, atol=1e-5, rtol=1e-4)


def test_dense_features_at_other_grid_use_resized_positional_embedding(tiny):
    crops = torch.randn(1, 3, 96, 48, generator=torch.Generator().manual_seed(4))
    visual = copy.deepcopy(tiny.model.visual)
    pos = visual.positional_embedding.detach().numpy().astype(np.float64)
    grid = np.einsum("oi,ijc,pj->opc", bicubic_matrix(4, 6), pos[1:].reshape(4, 4, -1), bicubic_matrix(4, 3))
    new_pos = np.concatenate([pos[:1], grid.reshape(18, -1)])
    visual.positional_embedding = torch.nn.Parameter(torch.tensor(new_pos, dtype=torch.float32))
    with torch.no_grad():
        expect = own_layers_dense(visual, crops)
    torch.testing.assert_close(tiny.encode_crops(crops), expect, atol=1e-4, rtol=1e-4)


def test_encode_image_normalises_with_clip_statistics(tiny):
    # 64 x 64 is already at the tiny preset's short side: one window, no resize, no padding.
    img = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    dense = tiny.encode_image(img)
    assert dense.image_size == (64, 64) and dense.resized_size == (64, 64) and dense.grid_size == (4, 4)
    norm = (img / 255.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    crop = torch.tensor(norm.transpose(2, 0, 1)[None], dtype=torch.float32)
    torch.testing.assert_close(dense.features, tiny.encode_crops(crop)[0], atol=1e-5, rtol=1e-4)
    assert dense.features.dtype == torch.float32 and not dense.features.requires_grad


def test_encode_image_geometry_and_support_mode(tiny):
    img = np.random.default_rng(6).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    test = tiny.encode_image(img)
    support = tiny.encode_image(img, support=True)
    # short side 30 -> 64: 64 x 107, padded to 64 x 112 = 4 x 7 patches
    assert test.resized_size == (64, 107) and test.padded_size == (64, 112)
    assert support.features.shape == test.features.shape == (4, 7, 32)
    torch.testing.assert_close(test.features.norm(dim=-1), torch.ones(4, 7))
    assert not torch.allclose(test.features, support.features)  # a different window protocol
    with pytest.raises(ValueError, match="uint8"):
        tiny.encode_image(img.astype(np.float32))


def test_templates_are_clips_80():
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert [t.format("dog") for t in IMAGENET_TEMPLATES] == [f("dog") for f in OPENAI_IMAGENET_TEMPLATES]


def test_text_features_average_normalised_template_embeddings(tiny):
    import open_clip

    tok = open_clip.SimpleTokenizer()
    expect = []
    with torch.no_grad():
        for name in ("cat", "traffic light"):
            e = tiny.model.encode_text(tok([t.format(name) for t in IMAGENET_TEMPLATES]))
            expect.append(F.normalize(F.normalize(e, dim=-1).mean(0), dim=0))
    got = tiny.encode_text(["cat", "traffic light"])
    torch.testing.assert_close(got, torch.stack(expect), atol=1e-5, rtol=1e-5)


def test_text_features_are_cached_by_prompt(tiny, monkeypatch):
    tiny.encode_text(["cached dog"])
    calls = []
    real = tiny.model.encode_text
    monkeypatch.setattr(tiny.model, "encode_text", lambda t: calls.append(len(t)) or real(t))
    a = tiny.encode_text(["cached dog", "new cow", "new cow"])
    assert calls == [80]  # only the one new prompt, once
    torch.testing.assert_close(a[1], a[2])
    tiny.encode_text(["new cow", "cached dog"])
    assert calls == [80]
    assert tiny.encode_text([]).shape == (0, 32)
    for bad in ("cat", [""], [3]):
        with pytest.raises(ValueError):
            tiny.encode_text(bad)


def test_text_feature_cache_keeps_the_most_recently_used_prompts(tiny, monkeypatch):
    """Issue 25: a node taught new names for days must not keep every name's features."""
    from rns_ros.core.backbones import dense

    monkeypatch.setattr(dense, "TEXT_CACHE_SIZE", 3)
    monkeypatch.setattr(tiny, "_text_cache", type(tiny._text_cache)())
    first = tiny.encode_text(["p0"])[0].clone()
    for name in ("p1", "p2", "p0", "p3"):  # p0 used again: p1 is now the least recent
        tiny.encode_text([name])
    assert list(tiny._text_cache) == ["p2", "p0", "p3"]
    torch.testing.assert_close(tiny.encode_text(["p0"])[0], first)  # kept, and the same
    assert all(t.untyped_storage().nbytes() == t.numel() * 4 for t in tiny._text_cache.values())  # own storage


def test_protocol_identity_and_seed(tiny):
    assert isinstance(tiny, DenseBackbone)
    assert (tiny.dim, tiny.patch_size, tiny.device.type) == (32, 16, "cpu")
    assert "test-tiny" in tiny.identity and "random-seed0" in tiny.identity
    assert tiny.resolution.describe() in tiny.identity
    other = build_backbone("test-tiny", seed=1)
    assert other.identity != tiny.identity
    img = np.random.default_rng(7).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    again = build_backbone("test-tiny", seed=0)
    torch.testing.assert_close(again.encode_image(img).features, tiny.encode_image(img).features)
    assert not torch.allclose(other.encode_image(img).features, tiny.encode_image(img).features)


def test_checkpoint_loading_and_fingerprint(tiny, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), path)
    loaded = build_backbone("test-tiny", seed=5, checkpoint=str(path))
    img = np.random.default_rng(8).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    torch.testing.assert_close(loaded.encode_image(img).features, tiny.encode_image(img).features)
    assert "file:tiny.pt:" in loaded.identity
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    shutil.copy(path, copy_dir / "tiny.pt")  # a copy has a new mtime but the same identity
    assert build_backbone("test-tiny", checkpoint=str(copy_dir / "tiny.pt")).identity == loaded.identity
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        build_backbone("test-tiny", checkpoint=str(tmp_path / "nope.bin"))


def test_precision_bf16_close_to_fp32_and_fp16_needs_cuda(tiny):
    bf16 = build_backbone("test-tiny", precision="bf16")
    img = np.random.default_rng(9).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, b = tiny.encode_image(img).features, bf16.encode_image(img).features
    assert b.dtype == torch.float32
    assert float((a * b).sum(-1).min()) > 0.98
    # the image tower is held in bf16 (no per-frame weight casts), the text tower stays fp32
    assert {p.dtype for p in bf16.model.visual.parameters()} == {torch.bfloat16}
    assert bf16.model.token_embedding.weight.dtype == torch.float32
    assert float((tiny.encode_text(["cat"]) * bf16.encode_text(["cat"])).sum()) > 0.98
    with pytest.raises(ValueError, match="CUDA"):
        build_backbone("test-tiny", precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        build_backbone("test-tiny", precision="int8")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_matches_fp32(precision):
    ref = build_backbone("test-tiny", device="cuda")
    low = build_backbone("test-tiny", device="cuda", precision=precision)
    img = np.random.default_rng(10).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    a, b = ref.encode_image(img).features, low.encode_image(img).features
    assert a.device.type == "cuda" and b.dtype == torch.float32
    assert float((a * b).sum(-1).min()) > 0.98
    assert float((ref.encode_text(["cat"]) * low.encode_text(["cat"])).sum()) > 0.98


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_encode_images_equals_one_image_at_a_time():
    """Several cameras' frames encoded together on the GPU give each frame its own features."""
    backbone = build_backbone("test-tiny", device="cuda")
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, size, dtype=np.uint8) for size in ((96, 128, 3), (64, 64, 3), (96, 128, 3))]
    together = backbone.encode_images(images)
    for image, dense in zip(images, together):
        alone = backbone.encode_image(image)
        assert dense.features.device.type == "cuda" and dense.image_size == alone.image_size
        torch.testing.assert_close(dense.features, alone.features, atol=1e-4, rtol=1e-4)
