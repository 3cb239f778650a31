"""CompressedImage decoding: PNG exact, JPEG close, grey and 16-bit, and bad data refused."""
import io

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage

from messages import random_rgb
from rns_ros.ros.compressed import compressed_to_rgb
from rns_ros.ros.conversions import FrameError


def compressed(array: np.ndarray, fmt: str, **save) -> CompressedImage:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt.upper(), **save)
    msg = CompressedImage(format=fmt)
    msg.data = buffer.getvalue()
    return msg


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


def test_grey_alpha_and_16_bit_images_become_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(compressed_to_rgb(compressed(grey, "png")), np.repeat(grey[:, :, None], 3, 2))
    rgba = np.dstack([random_rgb(5, 6), np.full((5, 6), 9, np.uint8)])
    np.testing.assert_array_equal(compressed_to_rgb(compressed(rgba, "png")), rgba[:, :, :3])
    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000)
    out = compressed_to_rgb(compressed(deep, "png"))
    np.testing.assert_array_equal(out[:, :, 0], (deep >> 8).astype(np.uint8))


def test_bad_data_is_refused_with_the_reason():
    garbage = CompressedImage(format="jpeg")
    garbage.data = b"\xff\xd8 not really a jpeg"
    with pytest.raises(FrameError, match="cannot decode compressed image"):
        compressed_to_rgb(garbage)
    with pytest.raises(FrameError, match="empty"):
        compressed_to_rgb(CompressedImage(format="png"))
    depth = compressed(np.zeros((4, 4), np.uint16), "png")
    depth.format = "16UC1; compressedDepth png"
    with pytest.raises(FrameError, match="record depth raw"):
        compressed_to_rgb(depth)
    with pytest.raises(FrameError, match="exceeds"):
        compressed_to_rgb(compressed(random_rgb(20, 20), "png"), max_pixels=100)
