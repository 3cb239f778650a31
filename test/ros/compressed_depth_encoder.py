"""compressedDepth messages as compressed_depth_image_transport's publisher writes them (its
encodeCompressedDepthImage, png codec), for tests: an independent writer of the format that
rns_ros.ros.depth.compressed reads."""
import io
import struct

import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage


def png16(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(values.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def encode_compressed_depth(depth: np.ndarray, encoding: str, *, depth_max: float = 10.0,
                            depth_quantization: float = 100.0, codec: str = "png",
                            stamp=(0, 0), frame_id: str = "depth_optical") -> CompressedImage:
    """depth: (H, W) uint16 millimetres for 16UC1, float32 metres for 32FC1 (NaN = none)."""
    if encoding == "16UC1":
        mm = depth.astype(np.uint16).copy()
        mm[mm > np.uint16(depth_max * 1000.0)] = 0  # the publisher's max depth filter
        image, params = mm, (0.0, 0.0)
    else:  # 32FC1: quantised inverse depth, 0 where depth >= depth_max (NaN compares false: 0 too)
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = quant_a / depth.astype(np.float32) + quant_b
        image = np.where(depth < depth_max, q, 0).astype(np.uint16)  # C++'s float -> ushort truncation
        params = (float(quant_a), float(quant_b))
    msg = CompressedImage(format=f"{encoding}; compressedDepth {codec}",
                          data=struct.pack("<iff", 0, *params) + png16(image))
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg
