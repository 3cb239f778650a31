"""sensor_msgs/PointCloud2 of labelled points, packed with numpy structured dtypes
(sensor_msgs_py is not on PyPI, and a structured array is one copy, no Python loop).

Point layout (24 bytes, little-endian, 4-byte aligned); ~/points is an unorganised cloud (height 1,
valid points only), ~/aligned/points an organised one (pixel (v, u) = point v * width + u, NaN x/y/z
where there is no depth):

    offset  name        type     meaning
    0       x           float32  metres, optical frame of the depth camera
    4       y           float32
    8       z           float32
    12      rgb         float32  colour packed the PCL/RViz way: the float's bits are 0x00RRGGBB
    16      label       uint16   class id, 0 = unlabeled (see ~/class_map)
    20      confidence  float32  probability of the winning class
"""
from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from rns_ros.ros.conversions import FrameError

# name -> (offset, PointField datatype, numpy type)
POINT_FIELDS: dict[str, tuple[int, int, str]] = {
    "x": (0, PointField.FLOAT32, "<f4"),
    "y": (4, PointField.FLOAT32, "<f4"),
    "z": (8, PointField.FLOAT32, "<f4"),
    "rgb": (12, PointField.FLOAT32, "<f4"),
    "label": (16, PointField.UINT16, "<u2"),
    "confidence": (20, PointField.FLOAT32, "<f4"),
}
POINT_STEP = 24
POINT_DTYPE = np.dtype({"names": list(POINT_FIELDS), "formats": [f[2] for f in POINT_FIELDS.values()],
                        "offsets": [f[0] for f in POINT_FIELDS.values()], "itemsize": POINT_STEP})
# PointField datatype -> numpy type (for reading clouds made by anyone)
_FIELD_TYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
                PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) float32 whose bits are 0x00RRGGBB (PCL's `rgb` field; RViz RGB8)."""
    rgb = rgb.astype(np.uint32)
    return ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype("<u4").view("<f4")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_rgb`: (N,) float32 -> (N, 3) uint8."""
    bits = np.ascontiguousarray(packed, dtype="<f4").view("<u4")
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)


def points_to_cloud(points, header) -> PointCloud2:
    """A `projection.SemanticPoints` as an unorganised PointCloud2 (height 1, every point valid)
    with the fields above; header copied."""
    return pack_cloud(points.xyz, points.rgb, points.labels, points.confidence, header)


def pack_cloud(xyz: np.ndarray, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray, header,
               shape: tuple[int, int] | None = None) -> PointCloud2:
    """N points (xyz (N, 3) float, rgb (N, 3) uint8, labels (N,) ids, confidence (N,)) as a
    PointCloud2 with the fields above, header copied. shape None: unorganised (height 1) and dense;
    (height, width): organised, point v * width + u = pixel (v, u), not dense (NaN x/y/z allowed)."""
    data = np.empty(len(labels), POINT_DTYPE)
    data["x"], data["y"], data["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    data["rgb"] = pack_rgb(rgb)
    data["label"] = labels
    data["confidence"] = confidence
    height, width = shape or (1, len(data))
    if height * width != len(data):
        raise ValueError(f"{len(data)} points do not fill a {height}x{width} cloud")
    msg = PointCloud2(header=header, height=height, width=width, is_bigendian=False, point_step=POINT_STEP,
                      row_step=POINT_STEP * width, is_dense=shape is None)
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=1)
                  for name, (offset, datatype, _) in POINT_FIELDS.items()]
    buffer = array.array("B")
    buffer.frombytes(data.view(np.uint8).data)
    msg.data = buffer
    return msg


def cloud_to_array(msg: PointCloud2) -> np.ndarray:
    """Any PointCloud2 with scalar fields -> structured array (height * width,) of its fields
    (byte order honoured, row padding skipped). Raises FrameError on an inconsistent message."""
    formats, names, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _FIELD_TYPES or f.count != 1:
            raise FrameError(f"field {f.name!r}: only scalar fields of the standard types are supported")
        names.append(f.name)
        formats.append((">" if msg.is_bigendian else "<") + _FIELD_TYPES[f.datatype])
        offsets.append(f.offset)
    try:
        dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step})
    except (ValueError, TypeError) as exc:
        raise FrameError(f"fields do not fit point_step {msg.point_step}: {exc}") from exc
    height, width = int(msg.height), int(msg.width)
    if msg.point_step * width > msg.row_step or len(msg.data) < msg.row_step * height:
        raise FrameError(f"cloud of {height}x{width} points of {msg.point_step} bytes does not fit row_step "
                         f"{msg.row_step} / {len(msg.data)} data bytes")
    raw = np.frombuffer(msg.data, np.uint8)[: msg.row_step * height].reshape(height, msg.row_step)
    rows = np.ascontiguousarray(raw[:, : msg.point_step * width])
    return rows.view(dtype).reshape(-1)
