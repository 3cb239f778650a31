"""OpenCLIP ViT dense features, the RNS variant of MaskCLIP (RNS section 1.1), and text features.

The one module that imports open_clip (lazily, inside functions). The image tower runs up to the
input x of its last residual block, then re-runs that block "value-only" (no token mixing):

    y = ln_1(x);  v = W_v y + b_v  (value slice of the attention in-projection)
    v' = x + out_proj(v);  v'' = v' + mlp(ln_2(v'))

then ln_post on every token, the class token dropped, the visual projection applied, and each
patch feature L2-normalised. Positional embeddings are resized bicubically to every crop's patch
grid (class-token embedding kept), so any crop size that is a multiple of the patch works.
"""
from __future__ import annotations

import contextlib
import functools
import posixpath
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rns_ros.core.backbones.base import DenseFeatures
from rns_ros.core.backbones.sliding import (ResolutionConfig, image_to_tensor, multi_pass_features,
                                            pad_to_multiple, resize_image, resized_size,
                                            sliding_window_features)
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PRECISIONS = ("fp32", "bf16", "fp16")

# TEST-ONLY architecture: ViT-B/16's layout at a tiny size (2 layers, width 64, patch 16, 2 heads,
# embed dim 32, a 2-layer text tower on CLIP's tokenizer). Random weights; predictions are noise.
TINY_OPENCLIP_CONFIG: dict = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def resize_positional_embedding(pos: torch.Tensor, src_grid: tuple[int, int],
                                dst_grid: tuple[int, int]) -> torch.Tensor:
    """(1 + Hs*Ws, width) positional embedding -> (1 + Hd*Wd, width).

    The class-token row is kept; the patch rows are resized as a (width, Hs, Ws) image with
    bicubic interpolation, align_corners=False.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if pos.shape[0] != 1 + src_grid[0] * src_grid[1]:
        raise ValueError(f"positional embedding has {pos.shape[0]} rows, expected 1 + {src_grid}")
    if src_grid == dst_grid:
        return pos
    cls, grid = pos[:1], pos[1:]
    grid = grid.reshape(1, src_grid[0], src_grid[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=dst_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(dst_grid[0] * dst_grid[1], -1).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


def value_only_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The RNS last block: attention replaced by its value path, residual and MLP kept.

    `block`: an open_clip ResidualAttentionBlock (torch MultiheadAttention inside);
    `x`: (B, L, width) tokens, batch first. Returns (B, L, width).
    """
    attn = block.attn
    if not isinstance(attn, torch.nn.MultiheadAttention):
        raise ValueError(f"value-only block needs torch MultiheadAttention, got {type(attn).__name__}; "
                         "open_clip 'custom' attention blocks are not supported")
    width = attn.embed_dim
    if attn.in_proj_weight is not None:
        w_v = attn.in_proj_weight[2 * width:]
    else:
        w_v = attn.v_proj_weight
    b_v = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    v = F.linear(block.ln_1(x), w_v, b_v)
    x = x + block.ls_1(attn.out_proj(v))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def dense_patch_tokens(visual: torch.nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised crops -> (B, H/p, W/p, d) projected patch features (not normalised)."""
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "final_ln_after_pool", False):
        raise ValueError("dense features need a plain ViT image tower (no attentional pooler, "
                         "ln_post applied per token)")
    p = visual.patch_size[0]
    b, _, h, w = crops.shape
    grid = (h // p, w // p)
    x = visual.conv1(crops.to(visual.conv1.weight.dtype))  # (B, width, gh, gw)
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(b, 1, -1)
    pos = resize_positional_embedding(visual.positional_embedding, visual.grid_size, grid)
    x = torch.cat([cls, x], dim=1) + pos.to(x.dtype)
    x = visual.ln_pre(x)
    transformer = visual.transformer
    batch_first = getattr(transformer, "batch_first", True)
    blocks = transformer.resblocks
    if not batch_first:
        x = x.transpose(0, 1)
    for blk in blocks[:-1]:
        x = blk(x)
    if not batch_first:
        x = x.transpose(0, 1)
    x = value_only_block(blocks[-1], x)
    x = visual.ln_post(x)[:, 1:]
    x = x @ visual.proj
    return x.reshape(b, grid[0], grid[1], -1)


class OpenClipBackbone:
    """Dense + text features from an open_clip CLIP model (implements `DenseBackbone`).

    Args:
        model: an open_clip `CLIP` with a plain ViT image tower; put in eval mode and frozen here.
        tokenizer: open_clip tokenizer (callable list[str] -> (n, context) int64).
        identity: names weights + preprocessing (see `DenseBackbone.identity`); the resolution
            description is appended here.
        resolution: resize and sliding-window protocol.
        precision: "fp32" (default), "bf16" (CPU or CUDA autocast) or "fp16" (CUDA autocast only).
            Applied in one autocast context around the model; features are returned as float32.
        mean, std: per-channel input normalisation (CLIP's by default).
        templates: prompt templates averaged per class (the 80 CLIP ImageNet ones by default).
        text_batch: sentences per text-tower call.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, identity: str,
                 resolution: ResolutionConfig = ResolutionConfig(), precision: str = "fp32",
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 templates: Sequence[str] = IMAGENET_TEMPLATES, text_batch: int = 256) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError(f"precision 'fp16' needs a CUDA device (backbone is on {self.device}); "
                             "use 'bf16' or 'fp32' on the CPU")
        self.precision = precision
        visual = model.visual
        self.patch_size = int(visual.patch_size[0])
        resolution.validate(self.patch_size)
        self.resolution = resolution
        self.dim = int(visual.output_dim)
        self.identity = f"{identity}/{resolution.describe()}"
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ValueError("every prompt template must contain exactly one '{}'")
        self.templates = tuple(templates)
        self.text_batch = int(text_batch)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self._text_cache: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"OpenClipBackbone({self.identity!r}, device={self.device}, precision={self.precision})"

    def autocast(self):
        """The one precision context every model call runs in."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def encode_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised crops -> (B, H/p, W/p, d) float32 unit-norm patch features."""
        with torch.no_grad(), self.autocast():
            feats = dense_patch_tokens(self.model.visual, crops)
        return F.normalize(feats.float(), dim=-1)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W, 3) uint8 RGB -> ((3, Hp, Wp) normalised and zero-padded, (3, H', W') the resized
        image in [0, 1] before normalisation).

        Zero padding happens after normalisation (as mmseg's data preprocessor does), so the pad
        is the dataset-mean colour.
        """
        t = image_to_tensor(image, self.device)
        resized = resize_image(t, resized_size(t.shape[-2:], self.resolution.short_side,
                                               self.resolution.max_long_side))
        return pad_to_multiple((resized - self._mean) / self._std, self.patch_size), resized

    def encode_image(self, image: np.ndarray, *, support: bool = False) -> DenseFeatures:
        """Unit-norm patch features of an (H, W, 3) uint8 RGB image (see `DenseBackbone`)."""
        r = self.resolution
        # no_grad rather than inference_mode: the adapter trains on these features, and
        # inference tensors cannot be saved for backward.
        with torch.no_grad():
            padded, resized = self.preprocess(image)
            if support:
                feats = multi_pass_features(padded, self.encode_crops, self.patch_size,
                                            r.support_crops, r.support_stride, r.max_batch)
            else:
                feats = sliding_window_features(padded, self.encode_crops, self.patch_size,
                                                r.test_crop, r.test_stride, r.max_batch)
        return DenseFeatures(features=feats, image_size=(int(image.shape[0]), int(image.shape[1])),
                             resized_size=(int(resized.shape[1]), int(resized.shape[2])),
                             patch_size=self.patch_size, resized_image=resized)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """(C, d) float32 unit-norm text features: per prompt, every template filled in, each
        sentence encoded and normalised, averaged, normalised. Cached by prompt string."""
        if isinstance(prompts, str):
            raise ValueError(f"encode_text takes a list of prompts, got the string {prompts!r}; "
                             f"wrap it: [{prompts!r}]")
        prompts = list(prompts)
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"every prompt must be a non-empty string, got {p!r}")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        if missing:
            for p, feat in zip(missing, self._encode_new_prompts(missing)):
                self._text_cache[p] = feat
        if not prompts:
            return torch.zeros(0, self.dim, dtype=torch.float32, device=self.device)
        return torch.stack([self._text_cache[p] for p in prompts])

    def _encode_new_prompts(self, prompts: list[str]) -> torch.Tensor:
        sentences = [t.format(p) for p in prompts for t in self.templates]
        chunks = []
        with torch.no_grad(), self.autocast():
            for i in range(0, len(sentences), self.text_batch):
                tokens = self.tokenizer(sentences[i:i + self.text_batch]).to(self.device)
                chunks.append(self.model.encode_text(tokens).float())
        per_sentence = F.normalize(torch.cat(chunks), dim=-1)
        mean = per_sentence.reshape(len(prompts), len(self.templates), -1).mean(1)
        return F.normalize(mean, dim=-1)


def build_tiny_openclip(seed: int = 0):
    """TEST-ONLY: (model, tokenizer) of `TINY_OPENCLIP_CONFIG` with seeded random weights.

    The global torch RNG is left untouched.
    """
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**TINY_OPENCLIP_CONFIG)
    return model, _clip_tokenizer(TINY_OPENCLIP_CONFIG["text_cfg"]["context_length"])


@functools.lru_cache(maxsize=4)
def _clip_tokenizer(context_length: int):
    """CLIP's BPE tokenizer (0.2 s to build: shared between backbones)."""
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length)


def create_openclip(model_name: str, weights_file: str | None, *, quick_gelu: bool = False):
    """(model, tokenizer) of an open_clip architecture, weights loaded from a local file.

    `weights_file=None` gives random weights (only for tests and benchmarks of compute).
    """
    import open_clip

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {model_name!r}; "
                         f"known ones include {open_clip.list_models()[:8]} (see open_clip.list_models())")
    model = open_clip.create_model(model_name, pretrained=weights_file, force_quick_gelu=quick_gelu,
                                   load_weights=weights_file is not None)
    return model, open_clip.get_tokenizer(model_name)


def pretrained_tag_source(model_name: str, tag: str) -> tuple[str, tuple[str, ...], dict]:
    """(hub repo id, file names, open_clip pretrained cfg) for an open_clip pretrained tag."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise ValueError(f"open_clip has no pretrained tag {tag!r} for {model_name!r}; known tags: "
                         f"{open_clip.list_pretrained_tags_by_model(model_name)}")
    hub = cfg.get("hf_hub", "")
    if not hub:
        raise ValueError(f"pretrained tag {tag!r} of {model_name!r} is not hosted on the Hugging Face hub; "
                         "download its weights yourself and pass them as a checkpoint file")
    # open_clip's convention: 'org/name/' = default file names, 'org/name/file.bin' = that file.
    repo_id, filename = posixpath.split(hub)
    from rns_ros.core.backbones.weights import OPENCLIP_HF_FILENAMES

    return repo_id, ((filename,) if filename else OPENCLIP_HF_FILENAMES), cfg
