"""sensor_msgs/CompressedImage from image_transport's `compressedDepth` plugin -> depth in metres.

What compressed_depth_image_transport (ROS 1 and 2) writes, and what is read here:
  * `format` is "<encoding>; compressedDepth <codec>", e.g. "16UC1; compressedDepth png" (older
    publishers: "16UC1; compressedDepth", meaning png);
  * `data` is a 12-byte header (int32 format, float32 depthQuantA, float32 depthQuantB, in the
    publisher's byte order: little-endian on every platform ROS 2 ships for) and then the image,
    one channel of 16 bits;
  * 16UC1: the image holds millimetres, 0 = no measurement (the publisher already zeroed depth
    beyond its depth_max);
  * 32FC1: the image holds quantised inverse depth q; depth = depthQuantA / (q - depthQuantB) in
    metres, q = 0 = no measurement (beyond depth_max).
The `png` codec is decoded with Pillow; `rvl` (a run-length codec, not the default) is refused with
the reason, as are corrupt payloads: the caller counts and logs a FrameError like any bad depth frame.
"""
from __future__ import annotations

import struct

import numpy as np

from rns_ros.ros.inputs.compressed import MAX_DECODED_PIXELS, PNG_SIGNATURE, SIXTEEN_BIT_MODES, decode_payload
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.projection import DEPTH_ENCODINGS, MILLIMETRE_ENCODINGS, millimetres_to_metres

TRANSPORT = "compressedDepth"  # the topic suffix and format word image_transport uses
HEADER = struct.Struct("<iff")  # ConfigHeader: format, depthParam[2]


def is_compressed_depth(msg) -> bool:
    """True for a CompressedImage (it has `format`), False for a raw sensor_msgs/Image."""
    return hasattr(msg, "format")


def parse_format(fmt: str) -> tuple[str, str]:
    """(encoding, codec) of a compressedDepth `format` string; FrameError if it is not one."""
    encoding, _, rest = fmt.partition(";")
    words = rest.split()
    if not words or words[0] != TRANSPORT:
        raise FrameError(f"compressed depth format {fmt!r} is not '<encoding>; {TRANSPORT} png' "
                         "(depth must come from the compressedDepth plugin, or raw)")
    return encoding.strip(), (words[1] if len(words) > 1 else "png")


def compressed_depth_to_metres(msg, max_pixels: int | None = MAX_DECODED_PIXELS) -> np.ndarray:
    """Decode a compressedDepth CompressedImage into (H, W) float32 metres, NaN where there is no
    measurement (as depth.depth_to_metres does for raw depth). Raises FrameError with the reason."""
    encoding, codec = parse_format(str(msg.format))
    if encoding not in DEPTH_ENCODINGS:
        raise FrameError(f"unsupported compressed depth encoding {encoding!r}; supported: 16UC1, 32FC1")
    if codec != "png":
        raise FrameError(f"compressedDepth codec {codec!r} is not supported, only png (the plugin's default: "
                         "set the publisher's compressedDepth format parameter to png)")
    data = bytes(msg.data)
    if len(data) <= HEADER.size or not data[HEADER.size:].startswith(PNG_SIGNATURE):
        raise FrameError(f"compressed depth ({len(data)} bytes) has no PNG after its {HEADER.size}-byte header")
    _, quant_a, quant_b = HEADER.unpack_from(data)
    raw = decode_payload(data[HEADER.size:], "PNG", max_pixels, _png16, "compressed depth")
    if encoding in MILLIMETRE_ENCODINGS:
        return millimetres_to_metres(raw)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(quant_a) / (raw.astype(np.float32) - np.float32(quant_b))
    depth[~(np.isfinite(depth) & (depth > 0)) | (raw == 0)] = np.nan
    return depth


def _png16(img) -> np.ndarray:
    if img.mode not in SIXTEEN_BIT_MODES:
        raise FrameError(f"compressed depth PNG is {img.mode}, expected one 16-bit channel")
    return np.asarray(img).astype(np.uint16)
