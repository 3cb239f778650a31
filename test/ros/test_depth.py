"""Depth decoding and projection against independent computations: known planes and boxes, each
point's pixel recovered from its coordinates, 16UC1 vs 32FC1, resampling between resolutions."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from messages import make_image, random_rgb
from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.projection import DepthConfig, Intrinsics, depth_to_metres, semantic_points

FX, FY, CX, CY = 500.0, 400.0, 31.5, 23.5  # a 64x48 camera


def camera_info(width=64, height=48, fx=FX, fy=FY, cx=CX, cy=CY) -> CameraInfo:
    info = CameraInfo(width=width, height=height)
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    return info


def float_image(metres: np.ndarray, *, pad=0, bigendian=False):
    """A 32FC1 Image built by hand (messages.make_image knows only 8/16-bit pixels)."""
    h, w = metres.shape
    row = metres.astype(">f4" if bigendian else "<f4").view(np.uint8).reshape(h, 4 * w)
    padded = np.full((h, 4 * w + pad), 0xCD, np.uint8)
    padded[:, : 4 * w] = row
    msg = make_image(np.zeros((h, w), np.uint8), "mono8")
    msg.encoding, msg.step, msg.is_bigendian = "32FC1", 4 * w + pad, int(bigendian)
    msg.data = padded.tobytes()
    return msg


def project(depth_msg, labels, *, stride=1, max_range_m=10.0, info=None, rgb=None):
    h, w = labels.shape
    rgb = random_rgb(h, w, seed=3) if rgb is None else rgb
    confidence = (labels.astype(np.float32) + 1) / 100
    intrinsics = Intrinsics.from_camera_info(info or camera_info())
    return semantic_points(depth_to_metres(depth_msg), intrinsics, labels, confidence, rgb,
                           stride=stride, max_range_m=max_range_m), rgb, confidence


def pixels_of(points, fx=FX, fy=FY, cx=CX, cy=CY):
    """Each point's depth pixel, recovered from its coordinates by the forward pinhole model."""
    x, y, z = (points.xyz[:, i].astype(np.float64) for i in range(3))
    return np.rint(fy * y / z + cy).astype(int), np.rint(fx * x / z + cx).astype(int)


def test_plane_at_known_depth_gives_exact_coordinates():
    depth = np.full((48, 64), 2000, np.uint16)  # 2 m everywhere
    points, _, _ = project(make_image(depth, "16UC1"), np.ones((48, 64), np.int32))
    assert len(points.labels) == 48 * 64
    v, u = np.mgrid[0:48, 0:64]
    expected = np.stack([(u - CX) * 2.0 / FX, (v - CY) * 2.0 / FY, np.full(u.shape, 2.0)], axis=-1).reshape(-1, 3)
    order = np.lexsort((points.cols, points.rows))  # row-major, like the expected grid
    np.testing.assert_allclose(points.xyz[order], expected, rtol=1e-6, atol=1e-7)
    assert points.xyz.dtype == np.float32


def test_box_in_front_of_a_wall_keeps_its_extent_and_label():
    depth = np.full((48, 64), 3000, np.uint16)
    depth[10:20, 30:50] = 1000  # a box face 1 m away, 20 px wide
    labels = np.ones((48, 64), np.int32)
    labels[10:20, 30:50] = 7
    points, _, _ = project(make_image(depth, "16UC1"), labels)
    box = points.labels == 7
    assert box.sum() == 200 and np.allclose(points.xyz[box, 2], 1.0) and np.allclose(points.xyz[~box, 2], 3.0)
    np.testing.assert_allclose([points.xyz[box, 0].min(), points.xyz[box, 0].max()],
                               [(30 - CX) / FX, (49 - CX) / FX], rtol=1e-6)
    np.testing.assert_allclose([points.xyz[box, 1].min(), points.xyz[box, 1].max()],
                               [(10 - CY) / FY, (19 - CY) / FY], rtol=1e-6)


def test_every_point_carries_the_label_confidence_and_colour_of_its_pixel():
    rng = np.random.default_rng(0)
    depth = rng.integers(300, 8000, (48, 64)).astype(np.uint16)
    depth[rng.random((48, 64)) < 0.2] = 0  # holes
    labels = rng.integers(0, 400, (48, 64)).astype(np.int32)  # ids beyond 255 too
    points, rgb, confidence = project(make_image(depth, "16UC1", pad=6, bigendian=True), labels, stride=2)
    v, u = pixels_of(points)
    np.testing.assert_array_equal(v, points.rows)
    np.testing.assert_array_equal(u, points.cols)
    assert (v % 2 == 0).all() and (u % 2 == 0).all()  # stride 2 decimates rows and columns
    np.testing.assert_array_equal(points.labels, labels[v, u])
    np.testing.assert_array_equal(points.confidence, confidence[v, u])
    np.testing.assert_array_equal(points.rgb, rgb[v, u])
    assert points.labels.dtype == np.uint16
    assert len(points.labels) == int((depth[::2, ::2] > 0).sum())  # every valid sampled pixel, once


def test_invalid_and_far_depth_give_no_point():
    metres = np.full((48, 64), 1.5, np.float32)
    metres[0, :4] = [0.0, np.nan, np.inf, -1.0]
    metres[1, :2] = [10.5, 10.0]  # beyond and exactly at max_range_m
    points, _, _ = project(float_image(metres), np.ones((48, 64), np.int32), max_range_m=10.0)
    kept = {(int(r), int(c)) for r, c in zip(points.rows, points.cols)}
    assert len(kept) == 48 * 64 - 5
    assert not {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)} & kept and (1, 1) in kept


@pytest.mark.parametrize("bigendian", [False, True])
def test_16uc1_millimetres_and_32fc1_metres_agree(bigendian):
    rng = np.random.default_rng(1)
    mm = rng.integers(0, 9000, (48, 64)).astype(np.uint16)
    metres = mm.astype(np.float32) / np.float32(1000.0)
    metres[mm == 0] = 0.0
    labels = rng.integers(0, 5, (48, 64)).astype(np.int32)
    a, _, _ = project(make_image(mm, "16UC1", pad=2, bigendian=bigendian), labels, stride=3)
    b, _, _ = project(float_image(metres, pad=4, bigendian=bigendian), labels, stride=3)
    mono16, _, _ = project(make_image(mm, "mono16"), labels, stride=3)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.xyz, mono16.xyz)
    np.testing.assert_allclose(depth_to_metres(make_image(mm, "16UC1"))[mm > 0], mm[mm > 0] / 1000.0, rtol=1e-6)


def _nearest_by_search(dst_index, dst_size, src_size):
    """Brute force: the source pixel whose centre is closest in normalised coordinates."""
    centres = (np.arange(src_size) + 0.5) / src_size
    return np.argmin(np.abs(centres[None, :] - ((dst_index + 0.5) / dst_size)[:, None]), axis=1)


@pytest.mark.parametrize("colour_size", [(30, 40), (72, 96), (48, 64)])
def test_labels_are_resampled_nearest_neighbour_when_resolutions_differ(colour_size):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 50, colour_size).astype(np.int32)
    depth = rng.integers(500, 4000, (48, 64)).astype(np.uint16)
    points, rgb, _ = project(make_image(depth, "16UC1"), labels)
    v, u = pixels_of(points)
    src_v = _nearest_by_search(v, 48, colour_size[0])
    src_u = _nearest_by_search(u, 64, colour_size[1])
    np.testing.assert_array_equal(points.labels, labels[src_v, src_u])
    np.testing.assert_array_equal(points.rgb, rgb[src_v, src_u])


def test_sizes_that_do_not_fit_are_refused_with_the_reason():
    depth = make_image(np.full((48, 64), 1000, np.uint16), "16UC1")
    labels = np.ones((48, 64), np.int32)
    with pytest.raises(FrameError, match="camera_info is 32x24"):
        project(depth, labels, info=camera_info(32, 24))
    unsized = camera_info(0, 0)  # drivers that leave the size empty: the depth image's size is used
    assert len(project(depth, labels, info=unsized)[0].labels) == 48 * 64
    with pytest.raises(ValueError, match="must be"):
        semantic_points(np.ones((48, 64), np.float32), Intrinsics(FX, FY, CX, CY), labels,
                        np.ones((10, 10), np.float32), random_rgb(48, 64))


def test_bad_depth_messages_and_camera_infos_raise_frame_errors():
    with pytest.raises(FrameError, match="unsupported depth encoding 'rgb8'"):
        depth_to_metres(make_image(random_rgb(4, 4), "rgb8"))
    truncated = make_image(np.ones((4, 4), np.uint16), "16UC1")
    truncated.data = truncated.data[:10]
    with pytest.raises(FrameError, match="truncated"):
        depth_to_metres(truncated)
    with pytest.raises(FrameError, match="focal length"):
        Intrinsics.from_camera_info(camera_info(fx=0.0))
    bad = camera_info()
    bad.k[0] = float("nan")
    with pytest.raises(FrameError, match="finite"):
        Intrinsics.from_camera_info(bad)


def test_depth_config_refuses_values_out_of_range():
    assert DepthConfig() == DepthConfig(enabled=False, max_time_diff_s=0.05, max_range_m=10.0, stride=2)
    for bad in ({"stride": 0}, {"max_range_m": 0.0}, {"max_time_diff_s": -1.0}):
        with pytest.raises(ValueError, match="depth."):
            DepthConfig(**bad)
