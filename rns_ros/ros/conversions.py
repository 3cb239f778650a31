"""sensor_msgs/Image <-> numpy, written for this package (no cv_bridge: see docs/ros.md).

Decoding honours the row padding (`step`) and, for 16-bit encodings, `is_bigendian`; it never
trusts a field it can check: a bad frame raises `FrameError` with the reason, which the node logs
and counts before dropping the frame. Encoding writes tightly packed rows (`step = width * bytes
per pixel`) in little-endian order, flagged in `is_bigendian`.

Pixel conventions: colour images are (H, W, 3) uint8 RGB; label images (H, W) integer class ids,
0 = unlabeled; confidence (H, W) float32.
"""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image

# encoding -> (channels, bytes per channel, channel order of the stored pixel)
INPUT_ENCODINGS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "rgb16": (3, 2, "rgb"),
    "bgr16": (3, 2, "bgr"),
    "mono16": (1, 2, "mono"),
}
MAX_MONO8_ID = 255
MAX_MONO16_ID = 65535


class FrameError(ValueError):
    """An image message that cannot be decoded; the message says why."""


def _pixel_rows(msg: Image, channels: int, depth: int) -> np.ndarray:
    """(H, W, channels) view of the message's pixels, in the message's byte order, rows unpadded."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise FrameError(f"empty image ({width}x{height})")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise FrameError(f"step {step} is smaller than one row of {width} {msg.encoding} pixels "
                         f"({row_bytes} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    # The last row's padding may be missing; anything shorter is a truncated frame.
    needed = step * (height - 1) + row_bytes
    if data.size < needed:
        raise FrameError(f"truncated data: {data.size} bytes for {width}x{height} {msg.encoding} "
                         f"with step {step} (needs {needed})")
    if data.size >= step * height:
        rows = data[: step * height].reshape(height, step)
    else:  # view rows through strides so the unpadded last row still fits
        rows = np.lib.stride_tricks.as_strided(data, shape=(height, step), strides=(step, 1))
    pixels = rows[:, :row_bytes]
    if depth == 1:
        return pixels.reshape(height, width, channels)
    dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
    return np.ascontiguousarray(pixels).view(dtype).reshape(height, width, channels)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Decode a sensor_msgs/Image into a C-contiguous (H, W, 3) uint8 RGB array.

    For tightly packed rgb8 this is a view of the message's buffer (no copy): treat it as read-only.

    Accepts the encodings in `INPUT_ENCODINGS`; 16-bit images keep their high byte; alpha is
    dropped; mono is replicated to three channels. Raises FrameError naming the problem.
    """
    encoding = msg.encoding.lower()
    if encoding not in INPUT_ENCODINGS:
        raise FrameError(f"unsupported encoding {msg.encoding!r}; supported: {sorted(INPUT_ENCODINGS)}")
    channels, depth, order = INPUT_ENCODINGS[encoding]
    pixels = _pixel_rows(msg, channels, depth)
    if depth == 2:
        pixels = (pixels >> 8).astype(np.uint8)
    if order == "mono":
        return np.repeat(pixels, 3, axis=2)
    if order.startswith("rgb"):
        return np.ascontiguousarray(pixels[:, :, :3])
    # bgr(a): three plane copies are several times faster than fancy indexing or a reversed view
    rgb = np.empty(pixels.shape[:2] + (3,), np.uint8)
    rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2] = pixels[:, :, 2], pixels[:, :, 1], pixels[:, :, 0]
    return rgb


def mask_from_image(msg: Image) -> np.ndarray:
    """Decode a mono8 (or 8UC1) mask message into an (H, W) bool array, non-zero = True."""
    if msg.encoding.lower() not in ("mono8", "8uc1"):
        raise FrameError(f"masks must be mono8 (or 8UC1), got {msg.encoding!r}")
    return _pixel_rows(msg, 1, 1)[:, :, 0] != 0


def labels_from_image(msg: Image) -> np.ndarray:
    """Decode a mono8/mono16 label image (e.g. one of ours) into an (H, W) int32 array of ids."""
    encoding = msg.encoding.lower()
    if encoding in ("mono8", "8uc1"):
        return _pixel_rows(msg, 1, 1)[:, :, 0].astype(np.int32)
    if encoding in ("mono16", "16uc1"):
        return _pixel_rows(msg, 1, 2)[:, :, 0].astype(np.int32)
    raise FrameError(f"label images are mono8 or mono16, got {msg.encoding!r}")


def _bytes_array(values: np.ndarray) -> array.array:
    """The array's bytes as the array.array('B') that message fields store (one copy, fast path)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8).data)
    return out


def _image(header, height: int, width: int, encoding: str, step: int, data: np.ndarray) -> Image:
    msg = Image()
    msg.header = header
    msg.height, msg.width, msg.encoding, msg.step = height, width, encoding, step
    msg.is_bigendian = 0
    msg.data = _bytes_array(data)
    return msg


def label_encoding(max_class_id: int) -> str:
    """"mono8" while every class id fits in 8 bits, else "mono16"; ValueError past 16 bits."""
    if max_class_id < 0:
        raise ValueError(f"class ids are >= 0, got a maximum of {max_class_id}")
    if max_class_id <= MAX_MONO8_ID:
        return "mono8"
    if max_class_id <= MAX_MONO16_ID:
        return "mono16"
    raise ValueError(f"class id {max_class_id} does not fit a mono16 label image (max {MAX_MONO16_ID})")


def labels_to_image(labels: np.ndarray, header, max_class_id: int | None = None) -> Image:
    """(H, W) integer class ids -> mono8 or mono16 Image (0 = unlabeled), header copied.

    The encoding follows `max_class_id` (the largest id that exists, so it does not flip from
    frame to frame); by default the largest id in `labels`.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    top = int(labels.max(initial=0)) if max_class_id is None else int(max_class_id)
    if labels.size and int(labels.min()) < 0:
        raise ValueError("labels must be >= 0 (0 = unlabeled)")
    if labels.size and int(labels.max()) > top:
        raise ValueError(f"labels hold id {int(labels.max())} above max_class_id {top}")
    encoding = label_encoding(top)
    height, width = labels.shape
    if encoding == "mono8":
        return _image(header, height, width, encoding, width, labels.astype(np.uint8, copy=False))
    return _image(header, height, width, encoding, 2 * width, labels.astype("<u2", copy=False))


CONFIDENCE_ENCODINGS = ("32FC1", "mono8")


def confidence_to_image(confidence: np.ndarray, header, encoding: str = "32FC1") -> Image:
    """(H, W) float probabilities -> Image, header copied.

    "32FC1": the probabilities as little-endian float32. "mono8": probability x 255, rounded to
    the nearest integer (values outside [0, 1] clipped), what Nav2's semantic costmap layer reads.
    """
    if confidence.ndim != 2:
        raise ValueError(f"confidence must be (H, W), got shape {confidence.shape}")
    height, width = confidence.shape
    if encoding == "32FC1":
        return _image(header, height, width, "32FC1", 4 * width, confidence.astype("<f4", copy=False))
    if encoding == "mono8":
        scaled = np.rint(np.clip(confidence, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
        return _image(header, height, width, "mono8", width, scaled)
    raise ValueError(f"confidence encoding must be one of {CONFIDENCE_ENCODINGS}, got {encoding!r}")


def unlabel_below(labels: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """`labels` with the unlabeled id 0 wherever `confidence` < `min_confidence` (the "none of the
    taught classes" answer); `labels` itself when the threshold is 0 (off)."""
    if labels.shape != confidence.shape:
        raise ValueError(f"labels {labels.shape} and confidence {confidence.shape} differ in shape")
    if min_confidence <= 0.0:
        return labels
    return np.where(confidence < np.float32(min_confidence), 0, labels).astype(labels.dtype, copy=False)


def rgb_to_image(rgb: np.ndarray, header) -> Image:
    """(H, W, 3) uint8 RGB -> rgb8 Image, header copied."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    height, width, _ = rgb.shape
    return _image(header, height, width, "rgb8", 3 * width, rgb)


def mask_image(mask: np.ndarray, header) -> Image:
    """(H, W) bool mask -> mono8 Image (255 = inside), header copied."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    height, width = mask.shape
    return _image(header, height, width, "mono8", width, mask.astype(np.uint8) * 255)


def confidence_from_image(msg: Image) -> np.ndarray:
    """Decode a confidence Image into an (H, W) float32 array of probabilities: 32FC1 (honouring
    step and endianness) or mono8 (value / 255)."""
    if msg.encoding == "mono8":
        return _pixel_rows(msg, 1, 1)[:, :, 0].astype(np.float32) / np.float32(255.0)
    if msg.encoding != "32FC1":
        raise FrameError(f"confidence images are 32FC1 or mono8, got {msg.encoding!r}")
    pixels = _pixel_rows(msg, 4, 1)
    dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
    return np.ascontiguousarray(pixels).view(dtype)[:, :, 0].astype(np.float32)
