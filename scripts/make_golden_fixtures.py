"""Regenerate the DINOv3.txt golden fixtures in test/core/backbones/fixtures/ from the authors'
reference code (not part of this project):

    git clone https://github.com/facebookresearch/dinov3 /tmp/dinov3
    .venv/bin/python scripts/make_golden_fixtures.py --dinov3 /tmp/dinov3

It builds the reference DINOv3 ViT and dino.txt model (dinov3/models/vision_transformer.py,
dinov3/eval/text/*) with the official ViT-L/16 + dino.txt layout at a tiny size, fills every
weight with seeded random values, saves the two state dicts under their official names (what
Meta's two files hold), and records the reference outputs for fixed inputs: the last-layer patch
tokens after the final norm, the global image embedding, the text embedding, and the token ids of
the reference tokenizer. test/core/backbones/test_backbone_dinotxt.py loads these files into the
project's own modules (timm DINOv3 + dinotxt_model.py) and compares.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent.parent / "test" / "core" / "backbones" / "fixtures"
# The official ViT-L/16 layout (dinov3/hub/backbones.py, dinov3_vitl16) at a tiny size.
VISION = dict(img_size=224, patch_size=16, in_chans=3, pos_embed_rope_base=100,
              pos_embed_rope_normalize_coords="separate", pos_embed_rope_rescale_coords=2,
              pos_embed_rope_dtype="fp32", embed_dim=32, depth=2, num_heads=2, ffn_ratio=4,
              qkv_bias=True, drop_path_rate=0.0, layerscale_init=1e-5, norm_layer="layernormbf16",
              ffn_layer="mlp", ffn_bias=True, proj_bias=True, n_storage_tokens=4, mask_k_bias=True)
# dinov3/hub/dinotxt.py (dinov3_vitl16_dinotxt_tet1280d20h24l) at a tiny size; small vocabulary.
TEXT = dict(context_length=77, vocab_size=512, dim=32, num_heads=2, num_layers=2, ffn_ratio=4,
            is_causal=True, ls_init_value=None, dropout_prob=0.0)
EMBED_DIM = 64
SENTENCES = ["a photo of a traffic light.", "the embroidered dining table.", "Café  au\tLAIT!!",
             "a " + "very " * 80 + "long prompt."]


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", "norm.weight", "ln_final.weight",
                              "attention_norm.weight", "ffn_norm.weight")):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
            elif name.endswith("gamma"):
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dinov3", required=True, help="a checkout of facebookresearch/dinov3")
    ap.add_argument("--out", default=str(FIXTURES))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.dinov3).resolve()))
    from dinov3.eval.text.dinotxt_model import DINOTxt, DINOTxtConfig
    from dinov3.eval.text.text_transformer import TextTransformer
    from dinov3.eval.text.tokenizer import Tokenizer
    from dinov3.models.vision_transformer import DinoVisionTransformer
    import open_clip

    gen = torch.Generator().manual_seed(15)
    vision = DinoVisionTransformer(**VISION)
    text = TextTransformer(**TEXT)
    config = DINOTxtConfig(
        embed_dim=EMBED_DIM, vision_model_freeze_backbone=True, vision_model_train_img_size=224,
        vision_model_use_class_token=True, vision_model_use_patch_tokens=True,
        vision_model_num_head_blocks=2, vision_model_head_blocks_drop_path=0.3,
        vision_model_use_linear_projection=False, vision_model_patch_tokens_pooler_type="mean",
        vision_model_patch_token_layer=1, text_model_freeze_backbone=False, text_model_num_head_blocks=0,
        text_model_head_blocks_is_causal=False, text_model_head_blocks_drop_prob=0.0,
        text_model_tokens_pooler_type="argmax", text_model_use_linear_projection=True)
    model = DINOTxt(model_config=config, vision_backbone=vision, text_backbone=text)
    model.init_weights()
    randomise(model, gen)
    model.eval()

    crops = [torch.randn(1, 3, 64, 48, generator=gen), torch.randn(2, 3, 32, 32, generator=gen)]
    tokens = torch.zeros(3, 77, dtype=torch.long)
    for row, end in enumerate((5, 17, 76)):  # end of text = the highest id, as in CLIP's BPE
        tokens[row, :end] = torch.randint(1, 510, (end,), generator=gen)
        tokens[row, end] = 511
    with torch.no_grad():
        outputs = [model.encode_image_with_patch_tokens(c) for c in crops]
        text_embedding = model.encode_text(tokens)
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    token_ids = Tokenizer(vocab_path=str(bpe)).tokenize(SENTENCES)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(vision.state_dict(), out / "dinov3_tiny_pretrain_backbone.pth")
    heads = {k: v for k, v in model.state_dict().items() if not k.startswith("visual_model.backbone.")}
    torch.save(heads, out / "dinov3_tiny_dinotxt_heads.pth")
    torch.save({
        "vision": {k: VISION[k] for k in ("embed_dim", "depth", "num_heads")},
        "heads": {"embed_dim": EMBED_DIM, "vision_dim": VISION["embed_dim"], "vision_heads": VISION["num_heads"],
                  "vision_head_blocks": 2, "text_dim": TEXT["dim"], "text_heads": TEXT["num_heads"],
                  "text_layers": TEXT["num_layers"], "context_length": TEXT["context_length"],
                  "vocab_size": TEXT["vocab_size"]},
        "crops": crops,
        "backbone_patch_tokens": [o[2] for o in outputs],
        "image_embedding": [o[0] for o in outputs],
        "tokens": tokens, "text_embedding": text_embedding,
        "sentences": SENTENCES, "token_ids": token_ids.to(torch.int32),
    }, out / "dinotxt_golden.pt")
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
