"""sensor_msgs/CompressedImage (JPEG, PNG: what image_transport's `compressed` plugin writes) -> RGB.

Pillow decodes whatever the bytes are (the `format` string, e.g. "jpeg" or "rgb8; jpeg compressed
bgr8", is informative only: the codec stores its colour order itself). Depth streams compressed
with the `compressedDepth` plugin are refused with a reason: record them raw.
"""
from __future__ import annotations

import io

import numpy as np

from rns_ros.ros.conversions import FrameError

MAX_DECODED_PIXELS = 16_777_216 * 4  # refuse decompression bombs before allocating them


def compressed_to_rgb(msg, max_pixels: int = MAX_DECODED_PIXELS) -> np.ndarray:
    """Decode a CompressedImage into a C-contiguous (H, W, 3) uint8 RGB array.

    Grey and palette images become RGB, alpha is dropped, 16-bit grey keeps its high byte.
    Raises FrameError naming the problem (compressedDepth, empty, corrupt or unknown data)."""
    from PIL import Image as PILImage, UnidentifiedImageError

    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise FrameError(f"compressed depth ({fmt!r}) is not a colour image; record depth raw (16UC1/32FC1)")
    data = bytes(msg.data)
    if not data:
        raise FrameError("empty compressed image")
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise FrameError(f"compressed image of {img.width}x{img.height} exceeds {max_pixels} pixels")
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
            return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    except FrameError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FrameError(f"cannot decode compressed image (format {fmt!r}): {exc}") from exc
