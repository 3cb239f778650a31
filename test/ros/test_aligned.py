"""The depth-aligned outputs (depth/aligned.py) against independent computations: every grid pixel's
point from the pinhole model, NaN where depth is missing or too far, labels/confidence/colour of the
colour pixel nearest to its depth pixel (brute-force search), the three messages' encodings and
layout read back byte for byte, and the refusals (CameraInfo size, stride, class ids above 255)."""
import numpy as np
import pytest
from std_msgs.msg import Header

from messages import random_rgb
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.aligned import (aligned_confidence, aligned_frame, aligned_labels, aligned_points,
                                       strides_dividing)
from rns_ros.ros.depth.pointcloud import POINT_FIELDS, cloud_to_array, unpack_rgb
from rns_ros.ros.depth.projection import Intrinsics

FX, FY, CX, CY = 50.0, 40.0, 15.5, 11.5
H, W = 24, 32  # the depth image


def nearest_by_search(dst_index, dst_size, src_size):
    """The source pixel whose centre is nearest (normalised coordinates), by exhaustive search; on a
    tie (an even scale factor puts a depth pixel's centre on the border of two colour pixels) the
    later one, the rule projection.nearest_source_index documents."""
    centres = (np.arange(src_size) + 0.5) / src_size
    distance = np.abs(centres[None, :] - ((np.asarray(dst_index) + 0.5) / dst_size)[:, None])
    nearest = distance <= distance.min(axis=1, keepdims=True) + 1e-12
    return src_size - 1 - np.argmax(nearest[:, ::-1], axis=1)  # the last of the nearest


def scene(colour_size=(H, W), seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.1] = np.nan  # holes
    labels = rng.integers(0, 256, colour_size).astype(np.int32)
    confidence = rng.random(colour_size).astype(np.float32)
    return depth, labels, confidence, random_rgb(*colour_size, seed=seed)


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("colour_size", [(H, W), (48, 64), (36, 48), (18, 24)])
def test_every_grid_pixel_is_its_depth_pixel_with_the_nearest_colour_pixels_label(stride, colour_size):
    depth, labels, confidence, rgb = scene(colour_size)
    depth[3, 4] = 9.0  # beyond max_range_m
    frame = aligned_frame(depth, Intrinsics(FX, FY, CX, CY, W, H), labels, confidence, rgb,
                          stride=stride, max_range_m=8.0)
    assert frame.labels.shape == frame.confidence.shape == (H // stride, W // stride)
    assert frame.xyz.shape == (H // stride, W // stride, 3) and frame.labels.dtype == np.uint8
    v, u = np.mgrid[0:H:stride, 0:W:stride]  # the depth pixel of each grid pixel
    z = depth[v, u].astype(np.float64)
    z[z > 8.0] = np.nan
    expected = np.stack([(u - CX) * z / FX, (v - CY) * z / FY, z], axis=-1)
    np.testing.assert_allclose(frame.xyz, expected, rtol=1e-6, atol=1e-6)  # NaN where expected is NaN
    assert np.isnan(frame.xyz).any() and np.isnan(frame.xyz[np.isnan(z)]).all()
    rows = nearest_by_search(v[:, 0], H, colour_size[0])
    cols = nearest_by_search(u[0], W, colour_size[1])
    np.testing.assert_array_equal(frame.labels, labels[np.ix_(rows, cols)])
    np.testing.assert_array_equal(frame.confidence, confidence[np.ix_(rows, cols)])
    np.testing.assert_array_equal(frame.rgb, rgb[np.ix_(rows, cols)])


def test_the_three_messages_share_the_grid_and_the_header():
    depth, labels, confidence, rgb = scene()
    frame = aligned_frame(depth, Intrinsics(FX, FY, CX, CY, W, H), labels, confidence, rgb, stride=2, max_range_m=10.0)
    header = Header(frame_id="depth_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    label_msg, conf_msg, cloud = (build(frame, header) for build in (aligned_labels, aligned_confidence, aligned_points))
    for msg in (label_msg, conf_msg, cloud):
        assert (msg.height, msg.width) == (H // 2, W // 2)
        assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("depth_optical", 12, 345)
    # images: one byte per pixel, rows without padding (what the layer assumes: data[v * width + u])
    for msg in (label_msg, conf_msg):
        assert msg.encoding == "mono8" and msg.step == msg.width and len(msg.data) == msg.width * msg.height
    np.testing.assert_array_equal(np.frombuffer(bytes(label_msg.data), np.uint8).reshape(H // 2, W // 2), frame.labels)
    np.testing.assert_array_equal(np.frombuffer(bytes(conf_msg.data), np.uint8).reshape(H // 2, W // 2),
                                  np.rint(frame.confidence * 255).astype(np.uint8))
    # the cloud: organised, point i = pixel i, ~/points' fields, NaN kept
    assert not cloud.is_dense and cloud.row_step == cloud.point_step * cloud.width
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [(n, o, t) for n, (o, t, _) in POINT_FIELDS.items()]
    points = cloud_to_array(cloud).reshape(H // 2, W // 2)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    np.testing.assert_array_equal(xyz, frame.xyz)  # bit for bit, NaN included (assert_array_equal: NaN == NaN)
    np.testing.assert_array_equal(points["label"], frame.labels)
    np.testing.assert_array_equal(points["confidence"], frame.confidence)
    np.testing.assert_array_equal(unpack_rgb(points["rgb"].reshape(-1)), frame.rgb.reshape(-1, 3))


def test_frames_that_cannot_give_aligned_outputs_are_refused_with_the_fix():
    depth, labels, confidence, rgb = scene()
    with pytest.raises(FrameError, match="camera_info is 64x48"):
        aligned_frame(depth, Intrinsics(FX, FY, CX, CY, 64, 48), labels, confidence, rgb, stride=1, max_range_m=10.0)
    with pytest.raises(FrameError, match=r"depth.stride 5 does not divide .* 32x24.*one of \[1, 2, 4, 8\]"):
        aligned_frame(depth, Intrinsics(FX, FY, CX, CY, W, H), labels, confidence, rgb, stride=5, max_range_m=10.0)
    labels[0, 0] = 256
    with pytest.raises(FrameError, match="class id 256 is above 255"):
        aligned_frame(depth, Intrinsics(FX, FY, CX, CY, W, H), labels, confidence, rgb, stride=1, max_range_m=10.0)
    assert strides_dividing(640, 480) == [1, 2, 4, 5, 8, 10, 16, 20, 32, 40]
