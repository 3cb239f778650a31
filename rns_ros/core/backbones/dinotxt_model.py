"""The dino.txt text tower and vision head (Jose et al., "DINOv2 Meets Text", and DINOv3), written
from the authors' reference code (facebookresearch/dinov3, dinov3/eval/text/*) because no library
ships them. Parameter names are the official ones, so the official file
`dinov3_vitl16_dinotxt_vision_head_and_text_encoder-*.pth` loads with `load_state_dict(strict=True)`
into `DinoTxtHeads`. The DINOv3 vision transformer itself comes from timm (see dinotxt.py).

    text:   tokens -> TextTransformer (causal, 24 x 1280) -> ln_final -> the token at the highest id
            (end of text) -> linear projection to 2048 = [class-aligned half | patch-aligned half]
    vision: [cls, 4 registers, patches] of the backbone (after its final norm) -> 2 attention blocks
            (no RoPE, SwiGLU FFN, layer scale) -> LayerNorm -> [cls | mean of patches] = 2048

RNS uses the backbone's patch tokens *before* this vision head and the patch-aligned half of the
text embedding; the vision head is kept so that the whole file loads (and is checked) and the
global dino.txt image embedding is available.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class DinoTxtConfig:
    """Sizes of the dino.txt heads (defaults: the official ViT-L/16 model, `tet1280d20h24l`)."""

    embed_dim: int = 2048  # joint embedding: class-aligned half + patch-aligned half
    vision_dim: int = 1024  # width of the DINOv3 backbone
    vision_heads: int = 16
    vision_head_blocks: int = 2
    text_dim: int = 1280
    text_heads: int = 20
    text_layers: int = 24
    context_length: int = 77
    vocab_size: int = 49408


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """SwiGLU with the hidden width 2/3 * 4 * dim rounded up to a multiple of 64 (`align_to=64`)."""

    def __init__(self, dim: int, hidden: int, align_to: int = 64) -> None:
        super().__init__()
        d = int(hidden * 2 / 3)
        d += -d % align_to
        self.w1 = nn.Linear(dim, d)
        self.w2 = nn.Linear(dim, d)
        self.w3 = nn.Linear(d, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention; `causal` for the text tower."""

    def __init__(self, dim: int, heads: int, causal: bool) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TextBlock(nn.Module):
    """The reference `CausalSelfAttentionBlock` (no layer scale: ls_init_value=None)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, causal=True)
        self.ffn_norm = nn.LayerNorm(dim)
        self.feed_forward = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.feed_forward(self.ffn_norm(x))


class TextTransformer(nn.Module):
    def __init__(self, cfg: DinoTxtConfig) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.text_dim)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_dim))
        self.blocks = nn.ModuleList(TextBlock(cfg.text_dim, cfg.text_heads) for _ in range(cfg.text_layers))
        self.ln_final = nn.LayerNorm(cfg.text_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_final(x)


class TextHead(nn.Module):
    """No head blocks in the official model: only the projection to the joint embedding."""

    def __init__(self, cfg: DinoTxtConfig) -> None:
        super().__init__()
        self.linear_projection = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)


class TextTower(nn.Module):
    def __init__(self, cfg: DinoTxtConfig) -> None:
        super().__init__()
        self.backbone = TextTransformer(cfg)
        self.head = TextHead(cfg)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, context) token ids -> (n, embed_dim): the end-of-text token (highest id) pooled."""
        x = self.head.linear_projection(self.backbone(tokens))
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]


class VisionBlock(nn.Module):
    """The reference `SelfAttentionBlock` of the vision head: no qkv bias, SwiGLU, layer scale, no RoPE."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, causal=False)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwiGLUFFN(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionHead(nn.Module):
    def __init__(self, cfg: DinoTxtConfig) -> None:
        super().__init__()
        if 2 * cfg.vision_dim != cfg.embed_dim:
            raise ValueError("only the official layout (embed_dim = 2 x vision_dim, no projection) is supported")
        self.blocks = nn.ModuleList(VisionBlock(cfg.vision_dim, cfg.vision_heads)
                                    for _ in range(cfg.vision_head_blocks))
        self.ln_final = nn.LayerNorm(cfg.vision_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.ln_final(tokens)


class VisionTower(nn.Module):
    """Holds only the head: the backbone is a separate timm model (its own weights file)."""

    def __init__(self, cfg: DinoTxtConfig) -> None:
        super().__init__()
        self.head = VisionHead(cfg)

    def forward(self, backbone_tokens: torch.Tensor, num_prefix: int) -> torch.Tensor:
        """(B, 1 + registers + patches, vision_dim) normed backbone tokens -> (B, embed_dim)."""
        out = self.head(backbone_tokens)
        return torch.cat([out[:, 0], out[:, num_prefix:].mean(dim=1)], dim=-1)


class DinoTxtHeads(nn.Module):
    """Everything of the official dino.txt file: `visual_model.head.*`, `text_model.*`, `logit_scale`."""

    def __init__(self, cfg: DinoTxtConfig = DinoTxtConfig()) -> None:
        super().__init__()
        self.config = cfg
        self.visual_model = VisionTower(cfg)
        self.text_model = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.zeros(1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(n, context) -> (n, embed_dim) joint text embedding (not normalised)."""
        return self.text_model(tokens)
