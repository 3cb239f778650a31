"""sensor_msgs/CompressedImage (JPEG, PNG: what image_transport's `compressed` plugin writes) -> RGB.

The node's `image_transport: compressed` input and rns-bag decode here, with Pillow. The payload's
own signature decides the codec (the `format` string, e.g. "jpeg" or "rgb8; jpeg compressed bgr8",
is informative only: the file stores its colour order itself), and only JPEG and PNG are opened.
Grey and palette images become RGB, alpha is dropped, 16-bit grey keeps its high byte (as for raw
mono16). The image size is read from the file header and checked against `max_pixels` before
anything is decoded. Depth streams compressed with the `compressedDepth` plugin, other codecs and
corrupt or truncated files raise `FrameError` with the reason, which the node counts and logs
before dropping the frame.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

from rns_ros.ros.conversions import FrameError

MAX_DECODED_PIXELS = 16_777_216 * 4  # refuse decompression bombs before allocating them
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def payload_kind(data: bytes) -> str | None:
    """'JPEG' or 'PNG' from the payload's first bytes; None for anything else."""
    if data.startswith(JPEG_SIGNATURE):
        return "JPEG"
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    return None


def compressed_to_rgb(msg, max_pixels: int | None = MAX_DECODED_PIXELS) -> np.ndarray:
    """Decode a CompressedImage (anything with `data` and `format`) into a C-contiguous (H, W, 3)
    uint8 RGB array. Raises FrameError naming the problem (compressedDepth, empty, not JPEG/PNG,
    corrupt or truncated, more than `max_pixels` pixels; None = no limit)."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.replace(" ", "").lower():
        raise FrameError(f"compressed depth ({fmt!r}, the compressedDepth plugin) is not a colour image; "
                         "give it as the depth input (depth.transport: compressedDepth; rns-bag --depth-topic)")
    data = bytes(msg.data)  # a compressed frame: a cheap copy
    if not data:
        raise FrameError("empty compressed image")
    kind = payload_kind(data)
    if kind is None:
        raise FrameError(f"cannot decode compressed image (format {fmt!r}): the payload is neither JPEG nor PNG "
                         f"(starts with {data[:4].hex()})")
    return decode_payload(data, kind, max_pixels, _to_rgb, "compressed image", f" (format {fmt!r})")


def _to_rgb(img) -> np.ndarray:
    if img.mode in SIXTEEN_BIT_MODES:
        grey = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def decode_payload(data: bytes, kind: str, max_pixels: int | None, convert, what: str, detail: str = "") -> np.ndarray:
    """convert(the opened Pillow image) of a JPEG/PNG payload ('JPEG' | 'PNG'): its size is checked
    against `max_pixels` from the file header first; every failure (corrupt, truncated, too large,
    and FrameErrors `convert` raises) is a FrameError naming `what` (and `detail`)."""
    try:
        with PILImage.open(io.BytesIO(data), formats=[kind]) as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise FrameError(f"{what} of {img.width}x{img.height} exceeds {max_pixels} pixels")
            return convert(img)
    except FrameError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise FrameError(f"{what} too large{detail}: {exc}") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad files
        raise FrameError(f"cannot decode {what}{detail}: corrupt {kind}: {exc}") from exc


def encode_compressed(rgb: np.ndarray, kind: str = "jpeg", quality: int = 90) -> tuple[bytes, str]:
    """(H, W, 3) uint8 RGB (or (H, W) mono) -> (payload, format string) as image_transport's
    compressed publisher writes them. For cameras, benchmarks and tests."""
    kind = kind.lower()
    if kind not in ("jpeg", "png"):
        raise ValueError(f"kind must be 'jpeg' or 'png', got {kind!r}")
    mono = rgb.ndim == 2
    out = io.BytesIO()
    options = {"quality": int(quality)} if kind == "jpeg" else {"compress_level": 1}
    PILImage.fromarray(np.ascontiguousarray(rgb)).save(out, format=kind.upper(), **options)
    encoding = "mono8" if mono else "rgb8"
    return out.getvalue(), f"{encoding}; {kind} compressed {'mono8' if mono else 'bgr8'}"
