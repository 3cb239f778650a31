"""SigLIP2 dense features (the attention-pool head's value path per patch) against the model's own
head run on one-token sequences, and text features against the model's own text tower."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rns_ros.core.backbones import build_backbone
from rns_ros.core.backbones.dense import WindowedBackbone
from rns_ros.core.backbones.siglip2 import SiglipParts, dense_siglip_tokens, value_only_pool
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES


@pytest.fixture(scope="module")
def tiny():
    return build_backbone("test-tiny-siglip2", seed=0)


def test_value_only_pool_is_the_head_on_one_token_sequences(tiny):
    pool = tiny.parts.trunk.attn_pool
    tokens = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = value_only_pool(pool, tokens)
        # timm's own head, each token alone: attention over a single key has weight 1.
        expect = torch.stack([pool(tokens[:, i:i + 1]) for i in range(5)], dim=1)
        assert not torch.allclose(pool(tokens), expect[:, 0], atol=1e-3)  # with all tokens it mixes
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_dense_features_by_hand_from_the_trunk(tiny):
    trunk = tiny.parts.trunk
    crops = torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(1))  # not the native 64 x 64
    with torch.no_grad():
        # Independent path: patch embedding, positional embedding resampled (bicubic, timm's
        # resample helper), blocks, final norm, then the head on each token alone.
        from timm.layers import resample_abs_pos_embed

        x = trunk.patch_embed.proj(crops).flatten(2).transpose(1, 2)
        x = x + resample_abs_pos_embed(trunk.pos_embed, (3, 5), (4, 4), num_prefix_tokens=0)
        for blk in trunk.blocks:
            x = blk(x)
        x = trunk.norm(x)
        expect = torch.cat([trunk.attn_pool(x[:, i:i + 1]) for i in range(15)], dim=0).reshape(1, 3, 5, -1)
        got = dense_siglip_tokens(trunk, crops)
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiny.encode_crops(crops), F.normalize(expect, dim=-1), atol=1e-5, rtol=1e-5)


def test_encode_image_uses_siglip_statistics(tiny):
    img = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # one window, no resize
    crop = torch.tensor(((img / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None], dtype=torch.float32)
    torch.testing.assert_close(tiny.encode_image(img).features, tiny.encode_crops(crop)[0], atol=1e-5, rtol=1e-4)


def test_text_features_average_normalised_template_embeddings(tiny):
    with torch.no_grad():
        e = tiny.parts.text(tiny.tokenizer([t.format("cat") for t in IMAGENET_TEMPLATES]))
    expect = F.normalize(F.normalize(e, dim=-1).mean(0), dim=0)
    torch.testing.assert_close(tiny.encode_text(["cat"])[0], expect, atol=1e-5, rtol=1e-5)
    assert isinstance(tiny, WindowedBackbone) and tiny.dim == 32


def test_checkpoint_and_refusals(tiny, tmp_path):
    path = tmp_path / "tiny_siglip.pt"
    torch.save(tiny.parts.state_dict(), path)
    loaded = build_backbone("test-tiny-siglip2", seed=7, checkpoint=str(path))
    img = np.random.default_rng(3).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    torch.testing.assert_close(loaded.encode_image(img, support=True).features,
                               tiny.encode_image(img, support=True).features)
    assert "file:tiny_siglip.pt" in loaded.identity
    import timm

    with pytest.raises(ValueError, match="attention-pooling"):
        SiglipParts(timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, embed_dim=32,
                                      depth=1, num_heads=2), tiny.parts.text)


def test_real_siglip2_files_come_from_a_folder_or_fail_fast_offline(tmp_path, monkeypatch):
    """A folder copied from the hub repo holds the weights and the tokenizer; a lone weights file
    needs the tokenizer in the HF cache, else a fast error naming the repo (no download offline)."""
    import json
    import time

    from rns_ros.core.backbones.siglip2 import SIGLIP2_HF_REPO, _hf_tokenizer, siglip2_files
    from rns_ros.core.backbones.weights import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "ViT-L-16-SigLIP2-512"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").write_bytes(b"stand-in")
    with pytest.raises(WeightsUnavailableError, match=SIGLIP2_HF_REPO) as err:
        start = time.monotonic()
        siglip2_files(str(folder / "open_clip_model.safetensors"), cache_dir=str(tmp_path / "empty"))
    assert time.monotonic() - start < 10 and "huggingface-cli download" in str(err.value)
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<pad>": 0, "<unk>": 1, "a": 2, "cat": 3}, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                             "pad_token": "<pad>", "unk_token": "<unk>"}))
    weights, tokenizer_source = siglip2_files(str(folder), cache_dir=str(tmp_path / "empty"))
    assert weights == str(folder / "open_clip_model.safetensors") and tokenizer_source == str(folder)
    ids = _hf_tokenizer(tokenizer_source, None)(["a cat"])
    assert ids.shape == (1, 64) and ids[0, :3].tolist() == [2, 3, 0]  # SigLIP2's context length, padded
