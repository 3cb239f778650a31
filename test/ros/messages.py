"""Build test Image messages by hand (independently of rns_ros.ros.conversions)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image


def make_image(pixels: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False,
               stamp=(0, 0), frame_id: str = "camera") -> Image:
    """pixels: (H, W) or (H, W, C) array already in the encoding's channel order and dtype.
    Each row gets `pad` junk bytes (0xAB) after it; 16-bit values are stored big- or little-endian."""
    arr = pixels if pixels.ndim == 3 else pixels[:, :, None]
    h, w, c = arr.shape
    if arr.dtype.itemsize == 2:
        arr = arr.astype(">u2" if bigendian else "<u2")
    row = arr.reshape(h, w * c).view(np.uint8).reshape(h, -1)
    padded = np.full((h, row.shape[1] + pad), 0xAB, dtype=np.uint8)
    padded[:, : row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=padded.shape[1])
    msg.data = padded.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
