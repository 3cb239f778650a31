"""CompressedImage decoding (rns_ros/ros/inputs/compressed.py): PNG exact, JPEG close, grey, palette, alpha
and 16-bit, the size limit read before decoding, and bad data refused with the reason."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage

from messages import random_rgb
from rns_ros.ros.inputs.compressed import compressed_to_rgb, encode_compressed
from rns_ros.ros.conversions import FrameError


def compressed(array: np.ndarray, fmt: str, **save) -> CompressedImage:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt.upper(), **save)
    return message(buffer.getvalue(), fmt)


def message(payload, fmt: str = "") -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = bytes(payload)
    return msg


def smooth_rgb(h=48, w=64):
    """A smooth colour image (JPEG keeps it within a few grey levels)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (h + w - 2)], axis=2).astype(np.uint8)


def test_png_is_exact_and_jpeg_is_close():
    rgb = random_rgb(30, 41, seed=4)
    out = compressed_to_rgb(compressed(rgb, "png"))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[:, :24] = (200, 30, 60)  # large flat regions survive JPEG almost unchanged
    smooth[:, 24:] = (20, 180, 220)
    jpeg = compressed_to_rgb(compressed(smooth, "jpeg", quality=95))
    assert jpeg.shape == (32, 48, 3)
    assert np.abs(jpeg[4:-4, 4:20].astype(int) - (200, 30, 60)).max() <= 6
    assert np.abs(jpeg[4:-4, 28:-4].astype(int) - (20, 180, 220)).max() <= 6


def test_jpeg_colour_and_mono_match_the_source():
    rgb = smooth_rgb()
    got = compressed_to_rgb(compressed(rgb, "jpeg", quality=95))
    assert got.shape == rgb.shape
    assert np.abs(got.astype(int) - rgb).mean() < 3  # lossy, but the same picture and channel order
    mono = rgb[:, :, 0]
    got_mono = compressed_to_rgb(compressed(mono, "jpeg", quality=95))
    assert (got_mono[:, :, 0] == got_mono[:, :, 1]).all() and (got_mono[:, :, 1] == got_mono[:, :, 2]).all()
    assert np.abs(got_mono[:, :, 0].astype(int) - mono).mean() < 3


def test_grey_alpha_palette_and_16_bit_images_become_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(compressed_to_rgb(compressed(grey, "png")), np.repeat(grey[:, :, None], 3, 2))
    rgba = np.dstack([random_rgb(5, 6), np.full((5, 6), 9, np.uint8)])
    np.testing.assert_array_equal(compressed_to_rgb(compressed(rgba, "png")), rgba[:, :, :3])
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    out = compressed_to_rgb(compressed(deep, "png"))
    np.testing.assert_array_equal(out[:, :, 0], (deep >> 8).astype(np.uint8))
    palette_src = np.zeros((6, 8, 3), np.uint8)
    palette_src[:, 4:] = (10, 200, 30)
    paletted = PILImage.fromarray(palette_src).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=4)
    out = io.BytesIO()
    paletted.save(out, format="PNG")
    np.testing.assert_array_equal(compressed_to_rgb(message(out.getvalue(), "png")), palette_src)


def test_encode_compressed_round_trips_with_image_transports_format_strings():
    rgb = smooth_rgb()
    payload, fmt = encode_compressed(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_rgb(message(payload, fmt)), rgb)
    payload, fmt = encode_compressed(rgb, "jpeg", quality=90)
    assert fmt == "rgb8; jpeg compressed bgr8" and payload[:3] == b"\xff\xd8\xff"
    assert encode_compressed(rgb[:, :, 0], "png")[1] == "mono8; png compressed mono8"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that announces width x height pixels with almost no data behind it."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"")) \
        + _png_chunk(b"IEND", b"")


def test_size_limit_is_checked_before_decoding():
    with pytest.raises(FrameError, match="10000x10000 exceeds 1000 pixels"):
        compressed_to_rgb(message(_png_header_only(10_000, 10_000), "png"), max_pixels=1000)
    with pytest.raises(FrameError, match="too large"):  # past Pillow's own bomb limit, even without ours
        compressed_to_rgb(message(_png_header_only(100_000, 100_000), "png"), max_pixels=None)
    with pytest.raises(FrameError, match="exceeds"):
        compressed_to_rgb(compressed(random_rgb(20, 20), "png"), max_pixels=100)


@pytest.mark.parametrize("payload, fmt, reason", [
    (b"", "jpeg", "empty compressed image"),
    (b"hello, this is not an image", "jpeg", "neither JPEG nor PNG"),
    (b"GIF89a" + bytes(20), "gif", "neither JPEG nor PNG"),
    (b"\xff\xd8 not really a jpeg", "jpeg", "cannot decode compressed image"),
    (b"\xff\xd8\xff\xe0" + bytes(40), "jpeg", "corrupt JPEG"),
    (b"\x89PNG\r\n\x1a\n" + bytes(30), "png", "corrupt PNG"),
])
def test_bad_data_is_refused_with_the_reason(payload, fmt, reason):
    with pytest.raises(FrameError, match=reason):
        compressed_to_rgb(message(payload, fmt))


def test_truncated_jpeg_and_png_and_compressed_depth_are_refused():
    rgb = random_rgb(40, 40, seed=2)
    for fmt in ("JPEG", "PNG"):
        whole = compressed(rgb, fmt)
        with pytest.raises(FrameError, match=f"corrupt {fmt}"):
            compressed_to_rgb(message(bytes(whole.data)[: len(whole.data) // 2], fmt))
    depth = compressed(np.zeros((4, 4), np.uint16), "png")
    depth.format = "16UC1; compressedDepth png"
    with pytest.raises(FrameError, match="compressedDepth.*depth.transport: compressedDepth"):
        compressed_to_rgb(depth)
