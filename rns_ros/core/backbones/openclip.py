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

import functools
import posixpath
from typing import Sequence

import torch
import torch.nn.functional as F

from rns_ros.core.backbones.dense import CLIP_MEAN, CLIP_STD, PRECISIONS, WindowedBackbone
from rns_ros.core.backbones.sliding import ResolutionConfig
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES

__all__ = ["CLIP_MEAN", "CLIP_STD", "PRECISIONS", "OpenClipBackbone", "build_tiny_openclip",
           "create_openclip", "dense_patch_tokens", "pretrained_tag_source",
           "resize_positional_embedding", "value_only_block"]

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


class OpenClipBackbone(WindowedBackbone):
    """Dense + text features from an open_clip CLIP model (implements `DenseBackbone`).

    Args:
        model: an open_clip `CLIP` with a plain ViT image tower; put in eval mode and frozen here.
        tokenizer: open_clip tokenizer (callable list[str] -> (n, context) int64).
        identity, resolution, precision, mean, std, templates, text_batch: see `WindowedBackbone`
            (mean/std default to CLIP's).
    """

    def __init__(self, model: torch.nn.Module, tokenizer, *, identity: str,
                 resolution: ResolutionConfig = ResolutionConfig(), precision: str = "fp32",
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 templates: Sequence[str] = IMAGENET_TEMPLATES, text_batch: int = 256) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        visual = model.visual
        if precision != "fp32":
            # The image tower runs every frame: its weights are held in the autocast dtype, since
            # autocast re-casts frozen weights on every call (a quarter of a cpu-fast forward
            # here, docs/backbones.md "Profiles"). The text tower runs once per class: kept fp32.
            visual.to(torch.bfloat16 if precision == "bf16" else torch.float16)
        super().__init__(identity=identity, dim=int(visual.output_dim), patch_size=int(visual.patch_size[0]),
                         device=next(model.parameters()).device, resolution=resolution,
                         precision=precision, mean=mean, std=std, templates=templates, text_batch=text_batch)

    @property
    def image_tower(self) -> torch.nn.Module:
        return self.model.visual

    def crop_features(self, crops: torch.Tensor) -> torch.Tensor:
        return dense_patch_tokens(self.model.visual, crops)

    def sentence_features(self, sentences: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(sentences).to(self.device))


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
