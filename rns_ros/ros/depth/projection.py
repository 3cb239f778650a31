"""Depth images -> labelled 3D points (numpy only: no Python loop over pixels, no ROS calls).

Conventions (the RealSense / ZED / OAK drivers' and REP 118's):
  * depth images are `16UC1` (millimetres; `mono16` is accepted as the same) or `32FC1` (metres);
    row padding (`step`) and `is_bigendian` are honoured as in conversions.py; 0, NaN, +-inf and
    negative values mean "no measurement";
  * points are in the depth image's optical frame (x right, y down, z forward, metres), projected
    with the pinhole model of the depth CameraInfo's K. Distortion is ignored: registered
    (aligned) depth images are rectified by the driver;
  * the depth image is assumed registered to the colour image (same viewpoint). When the two
    resolutions differ, each depth pixel takes the label, confidence and colour of the colour
    pixel whose centre is nearest to its own centre in normalised image coordinates
    (nearest-neighbour resampling, no interpolation between class ids).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rns_ros.ros.conversions import FrameError, _pixel_rows

MILLIMETRE_ENCODINGS = ("16UC1", "mono16")
METRE_ENCODINGS = ("32FC1",)
DEPTH_ENCODINGS = MILLIMETRE_ENCODINGS + METRE_ENCODINGS
DEPTH_TRANSPORTS = ("raw", "compressedDepth")  # image_transport's names
MAX_LABEL_ID = 65535  # the cloud's label field is uint16


@dataclass(frozen=True)
class DepthConfig:
    """The semantic point cloud from an aligned depth camera (ROS parameters `depth.*`)."""

    enabled: bool = False  # subscribe to depth/image + depth/camera_info and publish ~/points
    max_time_diff_s: float = 0.05  # a colour frame pairs with the depth frame nearest in stamp within this
    max_range_m: float = 10.0  # depth beyond this (like 0 and NaN) gives no point
    stride: int = 2  # use every stride-th depth pixel of every stride-th row (1 = all)
    transport: str = "raw"  # raw: depth/image as sensor_msgs/Image; compressedDepth: <depth/image>/compressedDepth
    aligned_outputs: bool = False  # also ~/aligned/labels, confidence, points on the depth grid (Nav2's semantic layer)

    def __post_init__(self):
        if not 0.0 <= self.max_time_diff_s <= 10.0:
            raise ValueError(f"depth.max_time_diff_s must be in [0, 10], got {self.max_time_diff_s}")
        if not 0.0 < self.max_range_m <= 10_000.0:
            raise ValueError(f"depth.max_range_m must be in (0, 10000], got {self.max_range_m}")
        if not 1 <= self.stride <= 64:
            raise ValueError(f"depth.stride must be in 1..64, got {self.stride}")
        if self.transport not in DEPTH_TRANSPORTS:
            raise ValueError(f"depth.transport must be one of {list(DEPTH_TRANSPORTS)}, got {self.transport!r}")
        if self.aligned_outputs and not self.enabled:
            raise ValueError("depth.aligned_outputs needs depth.enabled: true (the aligned outputs are built "
                             "from the depth input)")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (pixels) of an image `width` x `height` (0 x 0 = size not given)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0

    @classmethod
    def from_camera_info(cls, msg) -> "Intrinsics":
        """From a sensor_msgs/CameraInfo (K row-major: fx 0 cx / 0 fy cy / 0 0 1); FrameError if unusable."""
        k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
        if k.size != 9 or not np.isfinite(k).all():
            raise FrameError(f"camera_info K must hold 9 finite numbers, got {k.tolist()}")  # plain numbers
        if k[0] <= 0 or k[4] <= 0:
            raise FrameError(f"camera_info K has no focal length (fx={float(k[0])}, fy={float(k[4])}): "
                             "is the camera calibrated?")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(msg.width), int(msg.height))


@dataclass(frozen=True)
class SemanticPoints:
    """Valid depth pixels as points. N points; rows/cols are their depth-image pixels."""

    xyz: np.ndarray  # (N, 3) float32 metres, optical frame
    rgb: np.ndarray  # (N, 3) uint8 colour of the (resampled) colour pixel
    labels: np.ndarray  # (N,) uint16 class ids, 0 = unlabeled
    confidence: np.ndarray  # (N,) float32
    rows: np.ndarray  # (N,) int64 depth pixel row (v)
    cols: np.ndarray  # (N,) int64 depth pixel column (u)


def millimetres_to_metres(raw: np.ndarray) -> np.ndarray:
    """(H, W) integer millimetres -> float32 metres, NaN where 0 (no measurement)."""
    depth = raw.astype(np.float32)
    depth /= np.float32(1000.0)
    depth[raw == 0] = np.nan
    return depth


def depth_to_metres(msg) -> np.ndarray:
    """Decode a depth sensor_msgs/Image into (H, W) float32 metres, NaN where there is no measurement.

    16UC1/mono16 are millimetres (0 = none), 32FC1 metres (0, NaN, inf and negative = none).
    Raises FrameError naming the problem (unknown encoding, truncated data, ...)."""
    encoding = msg.encoding
    if encoding in MILLIMETRE_ENCODINGS:
        return millimetres_to_metres(_pixel_rows(msg, 1, 2)[:, :, 0])
    if encoding in METRE_ENCODINGS:
        pixels = np.ascontiguousarray(_pixel_rows(msg, 4, 1))
        depth = pixels.view(">f4" if msg.is_bigendian else "<f4")[:, :, 0].astype(np.float32)
        with np.errstate(invalid="ignore"):
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
        return depth
    raise FrameError(f"unsupported depth encoding {encoding!r}; supported: {list(DEPTH_ENCODINGS)} "
                     "(16UC1 millimetres, 32FC1 metres)")


def nearest_source_index(dst_size: int, src_size: int, dst_index: np.ndarray) -> np.ndarray:
    """For pixels `dst_index` of an axis with `dst_size` pixels, the index of the pixel of an axis
    with `src_size` pixels whose centre is nearest (same extent, pixel centres at i + 0.5). On a tie
    (a centre on the border of two source pixels, as with an even scale factor) the later one."""
    return ((2 * dst_index + 1) * src_size) // (2 * dst_size)


@dataclass(frozen=True)
class DepthGrid:
    """The depth pixels a stride keeps (rows[i], cols[j]) with, per grid row and column, the pinhole
    factors (x = x_per_col[j] * z, y = y_per_row[i] * z) and the colour pixel row/column whose
    label, confidence and colour the grid pixel takes (nearest centre: `nearest_source_index`)."""

    rows: np.ndarray
    cols: np.ndarray
    x_per_col: np.ndarray  # float32
    y_per_row: np.ndarray  # float32
    colour_rows: np.ndarray
    colour_cols: np.ndarray


def depth_grid(depth_m: np.ndarray, intrinsics: Intrinsics, labels: np.ndarray, confidence: np.ndarray,
               rgb: np.ndarray, stride: int) -> DepthGrid:
    """The grid shared by ~/points and the aligned outputs, after checking that the inputs fit
    together: FrameError when the depth image and its CameraInfo differ in size, ValueError on a
    bad argument (see `semantic_points`)."""
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth_m.shape}")
    height, width = depth_m.shape
    if intrinsics.width and (intrinsics.width, intrinsics.height) != (width, height):
        raise FrameError(f"depth image is {width}x{height} but its camera_info is "
                         f"{intrinsics.width}x{intrinsics.height}: they must describe the same image")
    if labels.ndim != 2 or confidence.shape != labels.shape or rgb.shape != labels.shape + (3,):
        raise ValueError(f"labels {labels.shape}, confidence {confidence.shape} and rgb {rgb.shape} must "
                         "be (H, W), (H, W) and (H, W, 3)")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)
    return DepthGrid(rows=rows, cols=cols,
                     x_per_col=((cols - intrinsics.cx) / intrinsics.fx).astype(np.float32),
                     y_per_row=((rows - intrinsics.cy) / intrinsics.fy).astype(np.float32),
                     colour_rows=nearest_source_index(height, labels.shape[0], rows),
                     colour_cols=nearest_source_index(width, labels.shape[1], cols))


def semantic_points(depth_m: np.ndarray, intrinsics: Intrinsics, labels: np.ndarray, confidence: np.ndarray,
                    rgb: np.ndarray, *, stride: int = 2, max_range_m: float = 10.0) -> SemanticPoints:
    """Project every `stride`-th valid depth pixel and attach its label, confidence and colour.

    depth_m: (Hd, Wd) float metres (NaN = none), e.g. from `depth_to_metres`. intrinsics: of the
    depth image (its size, when given, must be the depth image's). labels (H, W) ints, confidence
    (H, W) float and rgb (H, W, 3) uint8: the segmented colour frame, any size (nearest-neighbour
    resampled to the depth grid). Pixels with depth 0/NaN or beyond `max_range_m` give no point.
    Raises FrameError when the sizes do not fit together, ValueError on a bad argument.
    """
    grid = depth_grid(depth_m, intrinsics, labels, confidence, rgb, stride)
    if labels.size and (int(labels.max()) > MAX_LABEL_ID or int(labels.min()) < 0):
        raise ValueError(f"label ids must be in 0..{MAX_LABEL_ID} for the cloud's uint16 field")
    # Flat indices and per-row / per-column lookup tables: np.take on 1-D arrays is several times
    # faster than 2-D fancy indexing, and the pinhole factors depend on the column or row only.
    sampled = np.ascontiguousarray(depth_m[::stride, ::stride])
    with np.errstate(invalid="ignore"):
        flat = np.flatnonzero(sampled <= max_range_m)  # False for NaN
    sub_rows, sub_cols = np.divmod(flat, sampled.shape[1])
    z = sampled.reshape(-1).take(flat).astype(np.float32, copy=False)
    xyz = np.empty((z.size, 3), np.float32)
    np.multiply(grid.x_per_col.take(sub_cols), z, out=xyz[:, 0])
    np.multiply(grid.y_per_row.take(sub_rows), z, out=xyz[:, 1])
    xyz[:, 2] = z
    src = grid.colour_rows.take(sub_rows) * labels.shape[1] + grid.colour_cols.take(sub_cols)
    return SemanticPoints(xyz=xyz, rgb=rgb.reshape(-1, 3).take(src, axis=0),
                          labels=labels.reshape(-1).take(src).astype(np.uint16),
                          confidence=confidence.reshape(-1).take(src).astype(np.float32, copy=False),
                          rows=sub_rows * stride, cols=sub_cols * stride)
