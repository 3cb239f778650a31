"""PointCloud2 packing read back byte by byte with struct (independently of numpy's dtypes),
the PCL/RViz rgb packing, and the generic reader."""
import struct

import numpy as np
import pytest
from sensor_msgs.msg import PointField
from std_msgs.msg import Header

from rns_ros.ros.conversions import FrameError
from rns_ros.ros.depth.projection import SemanticPoints
from rns_ros.ros.depth.pointcloud import cloud_to_array, pack_rgb, points_to_cloud, unpack_rgb


def some_points(n=5, seed=0) -> SemanticPoints:
    rng = np.random.default_rng(seed)
    return SemanticPoints(xyz=rng.normal(size=(n, 3)).astype(np.float32),
                          rgb=rng.integers(0, 256, (n, 3)).astype(np.uint8),
                          labels=rng.integers(0, 65536, n).astype(np.uint16),
                          confidence=rng.random(n).astype(np.float32),
                          rows=np.arange(n), cols=np.arange(n))


def test_cloud_layout_and_every_byte_of_every_point():
    points = some_points()
    header = Header(frame_id="depth_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    msg = points_to_cloud(points, header)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("depth_optical", 12, 34)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 5, 24, 120)
    assert not msg.is_bigendian and msg.is_dense and len(msg.data) == 120
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields == {"x": (0, PointField.FLOAT32, 1), "y": (4, PointField.FLOAT32, 1), "z": (8, PointField.FLOAT32, 1),
                      "rgb": (12, PointField.FLOAT32, 1), "label": (16, PointField.UINT16, 1),
                      "confidence": (20, PointField.FLOAT32, 1)}
    data = bytes(msg.data)
    for i in range(5):
        x, y, z, rgb_bits, label, confidence = struct.unpack_from("<fffIH2xf", data, 24 * i)
        assert (x, y, z) == tuple(float(c) for c in points.xyz[i])
        r, g, b = (int(c) for c in points.rgb[i])
        assert rgb_bits == (r << 16) | (g << 8) | b
        assert label == int(points.labels[i]) and confidence == float(points.confidence[i])


def test_rgb_packing_is_pcls_and_inverts():
    packed = pack_rgb(np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]], np.uint8))
    assert packed.dtype == np.float32
    assert [struct.unpack("<I", struct.pack("<f", v))[0] for v in packed] == [0xFF0000, 0x00FF00, 0x0000FF, 0x010203]
    rgb = np.random.default_rng(1).integers(0, 256, (100, 3)).astype(np.uint8)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


def test_empty_cloud_is_valid():
    empty = SemanticPoints(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.uint16),
                           np.zeros(0, np.float32), np.zeros(0, int), np.zeros(0, int))
    msg = points_to_cloud(empty, Header())
    assert (msg.width, msg.row_step, len(msg.data)) == (0, 0, 0)
    assert len(cloud_to_array(msg)) == 0


def test_reader_round_trip_and_foreign_layouts():
    points = some_points(7, seed=2)
    arr = cloud_to_array(points_to_cloud(points, Header()))
    np.testing.assert_array_equal(np.stack([arr["x"], arr["y"], arr["z"]], axis=1), points.xyz)
    np.testing.assert_array_equal(arr["label"], points.labels)
    np.testing.assert_array_equal(unpack_rgb(arr["rgb"]), points.rgb)
    # a big-endian organised 2x2 cloud with row padding, as another driver might send
    msg = points_to_cloud(some_points(1), Header())
    msg.fields = [PointField(name="z", offset=0, datatype=PointField.FLOAT64, count=1)]
    msg.height, msg.width, msg.point_step, msg.row_step, msg.is_bigendian = 2, 2, 8, 20, True
    msg.data = struct.pack(">dd4x", 1.0, 2.0) + struct.pack(">dd4x", 3.0, 4.0)
    assert cloud_to_array(msg)["z"].tolist() == [1.0, 2.0, 3.0, 4.0]
    msg.data = msg.data[:30]
    with pytest.raises(FrameError, match="does not fit"):
        cloud_to_array(msg)
