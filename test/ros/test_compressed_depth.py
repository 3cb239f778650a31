"""image_transport's compressedDepth payloads -> metres, against an independent writer of the format."""
import io
import re
import struct

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage

from compressed_depth_encoder import encode_compressed_depth, png16
from messages import make_image
from rns_ros.ros.depth.compressed import compressed_depth_to_metres, is_compressed_depth, parse_format
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.projection import DepthConfig
from rns_ros.ros.depth.output import semantic_cloud
from rns_ros.ros.depth.pointcloud import cloud_to_array


def test_16uc1_millimetres_are_exact_and_zero_is_no_measurement():
    mm = np.random.default_rng(0).integers(0, 9000, (12, 20)).astype(np.uint16)
    mm[3, 4] = 0
    depth = compressed_depth_to_metres(encode_compressed_depth(mm, "16UC1"))
    assert depth.dtype == np.float32 and depth.shape == (12, 20)
    valid = mm > 0
    np.testing.assert_allclose(depth[valid], mm[valid] / 1000.0, rtol=1e-6)
    assert np.isnan(depth[~valid]).all()


def test_16uc1_beyond_the_publishers_depth_max_is_no_measurement():
    mm = np.array([[500, 2500]], np.uint16)
    depth = compressed_depth_to_metres(encode_compressed_depth(mm, "16UC1", depth_max=2.0))
    assert depth[0, 0] == pytest.approx(0.5) and np.isnan(depth[0, 1])


def test_32fc1_inverse_depth_comes_back_within_its_quantisation_step():
    metres = np.random.default_rng(1).uniform(0.3, 9.5, (16, 16)).astype(np.float32)
    metres[0, 0], metres[0, 1] = np.nan, 12.0  # no measurement; beyond depth_max 10
    depth = compressed_depth_to_metres(encode_compressed_depth(metres, "32FC1"))
    assert np.isnan(depth[0, 0]) and np.isnan(depth[0, 1])
    valid = np.isfinite(depth)
    assert valid.sum() == metres.size - 2
    # one inverse-depth step at z is z^2 / A (A = 100 * 101): truncation loses less than that
    step = metres[valid] ** 2 / (100.0 * 101.0)
    error = depth[valid] - metres[valid]
    assert (error >= -1e-5).all() and (error <= step * 1.001 + 1e-5).all()


def test_old_publishers_format_without_codec_means_png():
    assert parse_format("16UC1; compressedDepth") == ("16UC1", "png")
    assert parse_format("32FC1; compressedDepth png") == ("32FC1", "png")
    msg = encode_compressed_depth(np.full((2, 2), 1000, np.uint16), "16UC1")
    msg.format = "16UC1; compressedDepth"
    np.testing.assert_allclose(compressed_depth_to_metres(msg), 1.0)


@pytest.mark.parametrize("fmt, data, reason", [
    ("16UC1; compressedDepth rvl", None, "codec 'rvl' is not supported"),
    ("jpeg", None, "is not '<encoding>; compressedDepth png'"),
    ("8UC3; compressedDepth png", None, "unsupported compressed depth encoding '8UC3'"),
    ("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0), "has no PNG after its 12-byte header"),
    ("16UC1; compressedDepth png", b"", "has no PNG"),
    ("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + png16(np.ones((4, 4)))[:40], "corrupt PNG"),
])
def test_bad_payloads_are_refused_with_the_reason(fmt, data, reason):
    msg = encode_compressed_depth(np.ones((4, 4), np.uint16), "16UC1")
    msg.format = fmt
    if data is not None:
        msg.data = data
    with pytest.raises(FrameError, match=re.escape(reason)):
        compressed_depth_to_metres(msg)


def test_an_eight_bit_png_and_an_oversized_one_are_refused():
    buf = io.BytesIO()
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(buf, format="PNG")
    msg = CompressedImage(format="16UC1; compressedDepth png", data=struct.pack("<iff", 0, 0, 0) + buf.getvalue())
    with pytest.raises(FrameError, match="expected one 16-bit channel"):
        compressed_depth_to_metres(msg)
    big = encode_compressed_depth(np.ones((40, 40), np.uint16), "16UC1")
    with pytest.raises(FrameError, match="exceeds 100 pixels"):
        compressed_depth_to_metres(big, max_pixels=100)


def test_the_cloud_step_reads_compressed_and_raw_depth_alike():
    """semantic_cloud (the node's and rns-bag's step) takes either message type."""
    mm = np.full((6, 8), 2000, np.uint16)
    info = CameraInfo(width=8, height=6)
    info.k = [10.0, 0.0, 3.5, 0.0, 10.0, 2.5, 0.0, 0.0, 1.0]
    labels, conf, rgb = np.ones((6, 8), np.int32), np.ones((6, 8), np.float32), np.zeros((6, 8, 3), np.uint8)
    config = DepthConfig(stride=1)
    compressed = encode_compressed_depth(mm, "16UC1")
    raw = make_image(mm, "16UC1", frame_id="depth_optical")
    assert is_compressed_depth(compressed) and not is_compressed_depth(raw)
    clouds = [cloud_to_array(semantic_cloud(m, info, rgb, labels, conf, m.header, config)) for m in (compressed, raw)]
    assert len(clouds[0]) == 48
    np.testing.assert_array_equal(clouds[0], clouds[1])

