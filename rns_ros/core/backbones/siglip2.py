"""SigLIP2 ViT-L/16 (512 px) dense and text features through open_clip + timm.

SigLIP has no class token and no projection: its image embedding is the output of an attention-
pooling ("MAP") head, a learned latent query attending over the last layer's tokens, followed by
the head's own residual MLP. The last-layer patch tokens themselves are *not* in the text
embedding space, so, as MaskCLIP does for CLIP's attention-pooled ResNets and RNS does for
OpenCLIP's last block, each patch is passed through the head's value path alone:

    x_i = norm(last-layer token i)                 (the trunk's final norm)
    y_i = proj(W_v x_i + b_v)                       (= the head pooling a sequence of one token:
    f_i = y_i + mlp(norm_head(y_i))                   attention over one key has weight 1)

so f_i is exactly what SigLIP would embed if patch i were the whole image's only token. Text: the
open_clip SigLIP2 text tower on its Gemma tokenizer, 80 templates averaged. The authors' public
code has no SigLIP2 path; docs/backbones.md says why this choice.

Positional embeddings are resampled by timm (bicubic) to every crop's patch grid.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from rns_ros.core.backbones.dense import WindowedBackbone
from rns_ros.core.backbones.resolutions import SIGLIP2_RESOLUTION
from rns_ros.core.backbones.sliding import ResolutionConfig
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES

SIGLIP2_MODEL = "ViT-L-16-SigLIP2-512"
SIGLIP2_HF_REPO = "timm/ViT-L-16-SigLIP2-512"
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# TEST-ONLY: the same layout at a tiny size (random weights; CLIP's tokenizer stands in for Gemma's).
TINY_TRUNK = dict(embed_dim=32, depth=2, num_heads=2, img_size=64)
TINY_TEXT = dict(context_length=64, vocab_size=49408, width=32, heads=2, layers=2, no_causal_mask=True,
                 proj_bias=True, pool_type="last", norm_kwargs={"eps": 1e-6}, act_kwargs={"approximate": "tanh"})


class SiglipParts(nn.Module):
    """The two towers RNS needs: a timm ViT trunk with a MAP head (`attn_pool`) and a text tower."""

    def __init__(self, trunk: nn.Module, text: nn.Module) -> None:
        super().__init__()
        if getattr(trunk, "attn_pool", None) is None or getattr(trunk, "num_prefix_tokens", 1) != 0:
            raise ValueError("SigLIP dense features need a timm ViT without class token and with an "
                             "attention-pooling ('map') head")
        self.trunk = trunk
        self.text = text


def value_only_pool(pool: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) normed tokens -> (B, N, C): timm's AttentionPoolLatent applied to every token
    as a sequence of its own (value path, output projection, residual MLP)."""
    if getattr(pool, "pos_embed", None) is not None:
        raise ValueError("attention-pool heads with their own positional embedding are not supported")
    c = tokens.shape[-1]
    v = nn.functional.linear(tokens, pool.kv.weight[c:], pool.kv.bias[c:] if pool.kv.bias is not None else None)
    y = pool.proj(v)
    return y + pool.mlp(pool.norm(y)) if pool.mlp is not None else y


def dense_siglip_tokens(trunk: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised crops -> (B, H/p, W/p, d) MAP-value patch features (not normalised)."""
    b, _, h, w = crops.shape
    p = trunk.patch_embed.patch_size[0]
    tokens = trunk.forward_features(crops.to(trunk.patch_embed.proj.weight.dtype))  # after the final norm
    feats = value_only_pool(trunk.attn_pool, tokens)
    return trunk.fc_norm(feats).reshape(b, h // p, w // p, -1)


class Siglip2Backbone(WindowedBackbone):
    """SigLIP2 MAP-value patch features + text features (implements `DenseBackbone`).

    Args:
        parts: `SiglipParts` (trunk built with `dynamic_img_size=True`), frozen here.
        tokenizer: list[str] -> (n, context) int64 (open_clip's HFTokenizer for the real model).
        identity, resolution, precision, templates, text_batch: see `WindowedBackbone`.
    """

    def __init__(self, parts: SiglipParts, tokenizer, *, identity: str,
                 resolution: ResolutionConfig = SIGLIP2_RESOLUTION, precision: str = "fp32",
                 templates: Sequence[str] = IMAGENET_TEMPLATES, text_batch: int = 64) -> None:
        self.parts = parts.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        if not getattr(parts.trunk, "dynamic_img_size", False):
            raise ValueError("the SigLIP trunk must be built with dynamic_img_size=True (windows of any size)")
        super().__init__(identity=identity, dim=int(parts.trunk.embed_dim),
                         patch_size=int(parts.trunk.patch_embed.patch_size[0]),
                         device=next(parts.parameters()).device, resolution=resolution, precision=precision,
                         mean=SIGLIP_MEAN, std=SIGLIP_STD, templates=templates, text_batch=text_batch)

    @property
    def image_tower(self) -> torch.nn.Module:
        return self.parts.trunk

    def crop_features(self, crops: torch.Tensor) -> torch.Tensor:
        return dense_siglip_tokens(self.parts.trunk, crops)

    def sentence_features(self, sentences: list[str]) -> torch.Tensor:
        return self.parts.text(self.tokenizer(sentences).to(self.device))


def create_siglip_trunk(overrides: dict | None = None) -> nn.Module:
    import timm

    return timm.create_model("vit_large_patch16_siglip_512", pretrained=False, num_classes=0,
                             global_pool="map", dynamic_img_size=True, **(overrides or {}))


def build_tiny_siglip(seed: int = 0) -> SiglipParts:
    """TEST-ONLY: tiny SigLIP-style towers with seeded random weights (global RNG untouched)."""
    from open_clip.model import CLIPTextCfg, _build_text_tower

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = create_siglip_trunk(TINY_TRUNK)
        text = _build_text_tower(TINY_TRUNK["embed_dim"], CLIPTextCfg(**TINY_TEXT))
    return SiglipParts(trunk, text)


def siglip2_files(checkpoint: str | os.PathLike | None, cache_dir: str | None) -> tuple[str, str]:
    """(weights file, tokenizer folder or hub id) for the real SigLIP2: from `checkpoint` (a weights
    file, or a folder copied from the hub repo holding weights and tokenizer files), else the
    Hugging Face cache / hub. Raises WeightsUnavailableError (fast) when offline and not cached."""
    from rns_ros.core.backbones.weights import (OPENCLIP_HF_FILENAMES, WeightsUnavailableError,
                                                check_checkpoint_file, resolve_hub_weights)

    if checkpoint is not None and Path(checkpoint).expanduser().is_dir():
        folder = Path(checkpoint).expanduser()
        weights = [folder / n for n in OPENCLIP_HF_FILENAMES if (folder / n).is_file()]
        if not weights:
            raise FileNotFoundError(f"folder {str(folder)!r} holds none of {OPENCLIP_HF_FILENAMES}")
        weights_file = str(weights[0])
    elif checkpoint is not None:
        weights_file = str(check_checkpoint_file(checkpoint))
    else:
        weights_file = resolve_hub_weights(SIGLIP2_HF_REPO, OPENCLIP_HF_FILENAMES, cache_dir=cache_dir)
    folder = Path(weights_file).parent
    if all((folder / n).is_file() for n in TOKENIZER_FILES):
        return weights_file, str(folder)  # a hub snapshot or a copied folder: tokenizer beside the weights
    try:
        for name in TOKENIZER_FILES:
            resolve_hub_weights(SIGLIP2_HF_REPO, (name,), cache_dir=cache_dir)
    except WeightsUnavailableError as err:
        raise WeightsUnavailableError(  # a template: {checkpoint=...} is spelled per entry point
            f"the SigLIP2 tokenizer ({', '.join(TOKENIZER_FILES)} of {SIGLIP2_HF_REPO}) is not beside "
            f"{weights_file} nor in the Hugging Face cache: download the whole repo "
            f"(`huggingface-cli download {SIGLIP2_HF_REPO}`) and pass its folder, {{checkpoint=FOLDER}}. "
            + err.template) from err
    return weights_file, SIGLIP2_HF_REPO


def build_siglip2(*, device: torch.device, checkpoint: str | None, precision: str,
                  resolution: ResolutionConfig, seed: int, random_weights: bool,
                  cache_dir: str | None, tiny: bool = False) -> Siglip2Backbone:
    """SigLIP2 ViT-L/16-512 from its weights (see `siglip2_files`), with seeded random weights
    (`random_weights`: compute-only; CLIP's tokenizer stands in), or the TEST-ONLY `tiny` layout."""
    from rns_ros.core.backbones.openclip import _clip_tokenizer
    from rns_ros.core.backbones.weights import check_checkpoint_file, checkpoint_fingerprint

    if tiny:
        parts = build_tiny_siglip(seed)
        weights_id = f"random-seed{seed}"
        if checkpoint is not None:
            ckpt = check_checkpoint_file(checkpoint)
            parts.load_state_dict(torch.load(str(ckpt), map_location="cpu", weights_only=True), strict=True)
            weights_id = f"file:{checkpoint_fingerprint(ckpt)}"
        return Siglip2Backbone(parts.to(device), _clip_tokenizer(TINY_TEXT["context_length"]),
                               identity=f"siglip2/test-tiny/{weights_id}", resolution=resolution,
                               precision=precision)
    if random_weights and checkpoint is None:
        weights_file, tokenizer_source, weights_id = None, None, f"random-seed{seed}"
    else:
        weights_file, tokenizer_source = siglip2_files(checkpoint, cache_dir)  # fails fast, before any import
        weights_id = f"file:{checkpoint_fingerprint(weights_file)}" if checkpoint is not None else "webli"
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(SIGLIP2_MODEL, pretrained=None, load_weights=False)
        model.visual.trunk = create_siglip_trunk()  # the same weights' names, windows of any size
        if weights_file is not None:
            open_clip.load_checkpoint(model, weights_file)
    if len(model.visual.head) != 0:
        raise ValueError(f"{SIGLIP2_MODEL}: expected no projection after the MAP head")
    if tokenizer_source is None:
        tokenizer = _clip_tokenizer(64)  # random weights: any ids below the vocabulary size will do
    else:
        tokenizer = _hf_tokenizer(tokenizer_source, cache_dir)
    return Siglip2Backbone(SiglipParts(model.visual.trunk, model.text).to(device), tokenizer,
                           identity=f"siglip2/{SIGLIP2_MODEL}/{weights_id}",
                           resolution=resolution, precision=precision)


def _hf_tokenizer(source: str, cache_dir: str | None):
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ImportError("the SigLIP2 tokenizer needs the 'transformers' package: "
                          "pip install 'rns_ros[siglip2]' (scripts/setup.sh installs it)") from None
    import open_clip
    from open_clip.tokenizer import HFTokenizer

    text_cfg = open_clip.get_model_config(SIGLIP2_MODEL)["text_cfg"]
    return HFTokenizer(source, context_length=text_cfg["context_length"], cache_dir=cache_dir,
                       **text_cfg.get("tokenizer_kwargs", {}))
