"""The preprocessing protocol of each preset (rns-method.md 1.2 and 1.4), in one place so that
listing presets imports no model code."""
from __future__ import annotations

from rns_ros.core.backbones.sliding import ResolutionConfig

# OpenCLIP ViT-B/16: the dataclass defaults (short side 448, crop 448/224, support 448+224/112).
OPENCLIP_RESOLUTION = ResolutionConfig()
# DINOv3.txt (the authors' configs/dinov3txt.yaml): test short side 384, crop 384 stride 192;
# support images at their own size, one pass with crop 384 stride 112.
DINOTXT_RESOLUTION = ResolutionConfig(short_side=384, max_long_side=2048, test_crop=384, test_stride=192,
                                      support_crops=(384,), support_stride=112, support_native_size=True)
# SigLIP2 at 512 px (no published protocol): OpenCLIP's protocol scaled to the native 512 input.
SIGLIP2_RESOLUTION = ResolutionConfig(short_side=512, max_long_side=2048, test_crop=512, test_stride=256,
                                      support_crops=(512, 256), support_stride=128)
# TEST-ONLY presets: small windows so a CPU runs every code path in well under a second.
TINY_RESOLUTION = ResolutionConfig(short_side=64, max_long_side=256, test_crop=64, test_stride=32,
                                   support_crops=(64, 32), support_stride=16)
DINOTXT_TINY_RESOLUTION = ResolutionConfig(short_side=64, max_long_side=256, test_crop=64, test_stride=32,
                                           support_crops=(64,), support_stride=16, support_native_size=True)
