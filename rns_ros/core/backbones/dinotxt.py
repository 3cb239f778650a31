"""DINOv3.txt ViT-L/16 dense and text features (rns-method.md 1.4), as the RNS authors use them.

- Image: the DINOv3 ViT-L/16 backbone (timm `vit_large_patch16_dinov3_qkvb`: q/v biases with the
  key bias fixed at zero, 4 register tokens, RoPE base 100 with per-axis coordinates, layer scale,
  LayerNorm eps 1e-5) run on each crop; the dense features are its last-layer patch tokens after
  the final norm, *before* the dino.txt vision head. d = 1024.
- Text: the dino.txt text tower (dinotxt_model.py) on CLIP's BPE tokens; the second, patch-aligned
  half (dims 1024..2047) of the 2048-d embedding, per template, normalised and averaged.
- ImageNet mean/std; test short side 384, crop 384 stride 192; support images at their own size,
  one pass with crop 384 stride 112 (the authors' configs/dinov3txt.yaml).

Weights are two official files (Meta's DINOv3 download form): the backbone
`dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth` and the heads
`dinov3_vitl16_dinotxt_vision_head_and_text_encoder-a442d8f5.pth`; see `dinotxt_checkpoint_files`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from rns_ros.core.backbones.dense import IMAGENET_MEAN, IMAGENET_STD, WindowedBackbone
from rns_ros.core.backbones.dinotxt_model import DinoTxtConfig, DinoTxtHeads
from rns_ros.core.backbones.resolutions import DINOTXT_RESOLUTION
from rns_ros.core.backbones.sliding import ResolutionConfig
from rns_ros.core.backbones.templates import IMAGENET_TEMPLATES
from rns_ros.core.backbones.weights import DINOTXT_BACKBONE_FILE, DINOTXT_HEADS_FILE

TIMM_DINOV3_VITL16 = "vit_large_patch16_dinov3_qkvb"

# TEST-ONLY: the same layout at a tiny size (random weights; CLIP's full vocabulary so the real
# tokenizer works).
TINY_VISION = dict(embed_dim=32, depth=2, num_heads=2)
TINY_HEADS = DinoTxtConfig(embed_dim=64, vision_dim=32, vision_heads=2, vision_head_blocks=2,
                           text_dim=32, text_heads=2, text_layers=2)


def create_dinov3_vision(overrides: dict | None = None) -> torch.nn.Module:
    """The DINOv3 ViT-L/16 as a timm model (random weights); `overrides` change its sizes (tests)."""
    import timm

    return timm.create_model(TIMM_DINOV3_VITL16, pretrained=False, num_classes=0, **(overrides or {}))


def load_dinov3_backbone(vision: torch.nn.Module, state_dict: dict) -> None:
    """Load an official DINOv3 backbone state dict (names as in facebookresearch/dinov3) into the
    timm model: timm's own converter renames storage_tokens -> reg_token, ls1/ls2.gamma ->
    gamma_1/2, splits qkv.bias into q_bias/v_bias (the key bias is masked to zero upstream) and
    drops the RoPE periods (recomputed), mask_token and bias_mask. Strict: every weight is used."""
    from timm.models.eva import checkpoint_filter_fn

    if "storage_tokens" not in state_dict:
        raise ValueError("not a DINOv3 backbone checkpoint (no 'storage_tokens'); expected "
                         f"{DINOTXT_BACKBONE_FILE} or a file with the same names")
    vision.load_state_dict(checkpoint_filter_fn(dict(state_dict), vision), strict=True)


def load_dinotxt_heads(heads: DinoTxtHeads, state_dict: dict) -> None:
    """Load the official dino.txt file (vision head + text tower) strictly. Backbone weights, if a
    file carries them, are not part of it and are ignored."""
    state = {k: v for k, v in state_dict.items() if not k.startswith("visual_model.backbone.")}
    if not any(k.startswith("text_model.") for k in state):
        raise ValueError("not a dino.txt heads checkpoint (no 'text_model.*' weights); expected "
                         f"{DINOTXT_HEADS_FILE}")
    heads.load_state_dict(state, strict=True)


def _read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("teacher", "model", "state_dict"):  # training checkpoints wrap the weights
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def dinotxt_checkpoint_files(checkpoint: str | os.PathLike) -> tuple[Path, Path]:
    """(backbone file, heads file) from `checkpoint`: either "BACKBONE,HEADS" (two paths, in that
    order) or a directory holding both official files (the heads file's name contains 'dinotxt';
    the backbone's contains 'pretrain'). Raises FileNotFoundError naming what is missing."""
    text = os.fspath(checkpoint)
    if "," in text:
        parts = [Path(p.strip()).expanduser() for p in text.split(",")]
        if len(parts) != 2:
            raise ValueError(f"checkpoint {text!r}: give two files, 'BACKBONE.pth,DINOTXT.pth'")
        for p in parts:
            if not p.is_file():
                raise FileNotFoundError(f"dino.txt checkpoint file {str(p)!r} does not exist")
        return parts[0], parts[1]
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dino.txt checkpoint {text!r} is neither a folder nor 'BACKBONE.pth,DINOTXT.pth'; pass the "
            f"folder holding {DINOTXT_BACKBONE_FILE} and {DINOTXT_HEADS_FILE}, or both paths separated by a comma")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".pth", ".pt", ".safetensors"))
    heads = [p for p in files if "dinotxt" in p.name]
    backbone = [p for p in files if "dinotxt" not in p.name and "pretrain" in p.name]
    if len(heads) != 1 or len(backbone) != 1:
        raise FileNotFoundError(
            f"folder {str(folder)!r} must hold exactly one backbone file (name containing 'pretrain', "
            f"e.g. {DINOTXT_BACKBONE_FILE}) and one heads file (name containing 'dinotxt', e.g. "
            f"{DINOTXT_HEADS_FILE}); found {[p.name for p in files]}")
    return backbone[0], heads[0]


class DinoTxtBackbone(WindowedBackbone):
    """DINOv3 patch tokens + dino.txt patch-aligned text features (implements `DenseBackbone`).

    Args:
        vision: timm DINOv3 model (Eva with register tokens and RoPE), frozen here.
        heads: `DinoTxtHeads` (text tower and vision head), frozen here.
        tokenizer: CLIP BPE tokenizer (list[str] -> (n, 77) int64).
        identity, resolution, precision, templates, text_batch: see `WindowedBackbone`.
    """

    def __init__(self, vision: torch.nn.Module, heads: DinoTxtHeads, tokenizer, *, identity: str,
                 resolution: ResolutionConfig = DINOTXT_RESOLUTION, precision: str = "fp32",
                 templates: Sequence[str] = IMAGENET_TEMPLATES, text_batch: int = 64) -> None:
        self.vision = vision.eval().requires_grad_(False)
        self.heads = heads.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        if heads.config.vision_dim != vision.embed_dim:
            raise ValueError(f"dino.txt heads expect a {heads.config.vision_dim}-d backbone, "
                             f"got {vision.embed_dim}-d")
        super().__init__(identity=identity, dim=int(vision.embed_dim),
                         patch_size=int(vision.patch_embed.patch_size[0]),
                         device=next(vision.parameters()).device, resolution=resolution,
                         precision=precision, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         templates=templates, text_batch=text_batch)

    def backbone_tokens(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1 + registers + H/p * W/p, 1024) last-layer tokens after the final norm."""
        return self.vision.forward_features(crops.to(self.vision.patch_embed.proj.weight.dtype))

    @property
    def image_tower(self) -> torch.nn.Module:
        return self.vision

    def crop_features(self, crops: torch.Tensor) -> torch.Tensor:
        b, _, h, w = crops.shape
        patches = self.backbone_tokens(crops)[:, self.vision.num_prefix_tokens:]
        return patches.reshape(b, h // self.patch_size, w // self.patch_size, -1)

    def text_embedding(self, sentences: list[str]) -> torch.Tensor:
        """(n, 2048) full dino.txt text embeddings (class-aligned half, patch-aligned half)."""
        return self.heads.encode_text(self.tokenizer(sentences).to(self.device))

    def sentence_features(self, sentences: list[str]) -> torch.Tensor:
        return self.text_embedding(sentences)[:, self.dim:]

    def image_embedding(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 2048) global dino.txt image embeddings (not used by RNS; for checks and retrieval)."""
        with torch.no_grad(), self.autocast():
            return self.heads.visual_model(self.backbone_tokens(crops), self.vision.num_prefix_tokens).float()


def build_dinotxt(*, device: torch.device, checkpoint: str | None, precision: str,
                  resolution: ResolutionConfig, seed: int, random_weights: bool,
                  tiny: bool = False) -> DinoTxtBackbone:
    """The DINOv3.txt backbone from its two weight files (see `dinotxt_checkpoint_files`), or with
    seeded random weights (`random_weights`, or the TEST-ONLY `tiny` layout)."""
    from rns_ros.core.backbones.openclip import _clip_tokenizer
    from rns_ros.core.backbones.weights import checkpoint_fingerprint

    files = dinotxt_checkpoint_files(checkpoint) if checkpoint is not None else None
    cfg = TINY_HEADS if tiny else DinoTxtConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vision = create_dinov3_vision(TINY_VISION if tiny else None)
        heads = DinoTxtHeads(cfg)
        if tiny or random_weights:
            _randomise(heads)
    if files is not None:
        load_dinov3_backbone(vision, _read_state_dict(files[0]))
        load_dinotxt_heads(heads, _read_state_dict(files[1]))
        weights_id = "+".join(f"file:{checkpoint_fingerprint(p)}" for p in files)
    else:
        weights_id = f"random-seed{seed}"
    name = "dinov3txt/test-tiny" if tiny else "dinov3txt/vitl16"
    return DinoTxtBackbone(vision.to(device), heads.to(device), _clip_tokenizer(cfg.context_length),
                           identity=f"{name}/{weights_id}",
                           resolution=resolution,
                           precision=precision)


def _randomise(heads: DinoTxtHeads) -> None:
    """Seeded random weights for the heads (their constructors leave plain defaults)."""
    with torch.no_grad():
        for name, p in heads.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.1)
            elif p.ndim >= 2:
                torch.nn.init.normal_(p, std=p.shape[-1] ** -0.5)
