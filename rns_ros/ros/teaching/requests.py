"""What a teaching request carries, checked: images, masks and the one annotation of an exemplar,
and the wrapper that turns every handler into one that never raises.

A `Refused` (any ValueError) becomes `success=false, message="refused: <why>"` on a fresh response,
so a refused request changes nothing and reports no half-filled fields; anything else is an
internal error, logged with its traceback.
"""
from __future__ import annotations

import functools
import traceback

import numpy as np
from sensor_msgs.msg import Image

from rns_ros.ros.conversions import FrameError, image_to_rgb, mask_from_image, mask_image

TEACH_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")  # images the services accept


class Refused(ValueError):
    """A request the node refuses; the message says why and how to fix it."""


def given(img: Image, what: str = "image") -> bool:
    """Whether a request's optional image field was filled. Only the empty Image (no data, width
    and height 0) means "not given"; one without pixels but with data, or with one of its two
    sizes, is malformed: Refused with the reason (it never stands for "not given")."""
    width, height, size = int(img.width), int(img.height), len(img.data)
    if width == 0 and height == 0 and size == 0:
        return False
    if width == 0 or height == 0:
        raise Refused(f"{what} is malformed: {width}x{height} with {size} bytes of data; send a whole image, "
                      "or leave it empty (no data, width and height 0)" +
                      (" to use the latest camera frame" if what == "image" else ""))
    return True


def decode_request_image(msg: Image, what: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 RGB from a request image in one of TEACH_ENCODINGS; Refused otherwise."""
    if msg.encoding.lower() not in TEACH_ENCODINGS:
        raise Refused(f"{what} encoding {msg.encoding!r} is not supported; use one of {list(TEACH_ENCODINGS)}")
    try:
        return image_to_rgb(msg)
    except FrameError as exc:
        raise Refused(f"bad {what}: {exc}") from exc


def decode_mask(msg: Image, size: tuple[int, int], what: str) -> np.ndarray:
    """(H, W) bool from a mono8 mask of the image's size with at least one non-zero pixel."""
    try:
        mask = mask_from_image(msg)
    except FrameError as exc:
        raise Refused(f"bad {what}: {exc}") from exc
    if mask.shape != size:
        raise Refused(f"{what} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}; "
                      "they must be the same size")
    if not mask.any():
        raise Refused(f"{what} is empty (all zero): mark at least one pixel of the object")
    return mask


def parse_annotation(request, size: tuple[int, int]) -> tuple[str, object]:
    """The request's single annotation, checked against an image of `size` (H, W).

    Returns (kind, prompt): ("mask", (H, W) bool), ("scribble", (H, W) bool strokes),
    ("box", (4,) float [x_min, y_min, x_max, y_max]) or ("points", ((n, 2) float xy, (n,) int32
    labels, 1 = on the object)). Refused when none or several are given, or one is malformed.
    """
    present = [k for k, filled in (("mask", given(request.mask, "mask")), ("box", len(request.box) > 0),
                                   ("points", len(request.points) > 0 or len(request.point_labels) > 0),
                                   ("scribble", given(request.scribble, "scribble"))) if filled]
    if len(present) != 1:
        raise Refused(f"give exactly one annotation (mask, box, points or scribble), got {present or 'none'}")
    kind = present[0]
    if kind in ("mask", "scribble"):
        return kind, decode_mask(getattr(request, kind), size, kind)
    h, w = size
    if kind == "box":
        box = np.asarray(request.box, dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise Refused(f"box must be 4 finite numbers [x_min, y_min, x_max, y_max], got {list(request.box)}")
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise Refused(f"box {box.tolist()} is not inside the {w}x{h} image with min < max")
        return kind, box
    if len(request.points) != len(request.point_labels):
        raise Refused(f"{len(request.points)} points but {len(request.point_labels)} point_labels; "
                      "give one label per point")
    pts = np.array([[p.x, p.y] for p in request.points], dtype=np.float64)
    labels = np.array([1 if v else 0 for v in request.point_labels], dtype=np.int32)
    if not np.all(np.isfinite(pts)):
        raise Refused("points contain NaN or inf")
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
    if outside.any():
        raise Refused(f"points {pts[outside].tolist()} are outside the {w}x{h} image")
    if not labels.any():
        raise Refused("at least one point must be positive (on the object)")
    return kind, (pts, labels)


def describe_taught_frame(response, frame: Image, mask: np.ndarray, return_mask: bool) -> str:
    """Fill an AddExemplar response's frame fields (the header, stamp included, and size of the
    frame the exemplar was made from) and, only when asked, the mask (a 640x480 one is 300 KB);
    returns "on the WxH frame stamped S.N" for the answer's message."""
    response.frame_header = frame.header
    response.frame_height, response.frame_width = int(mask.shape[0]), int(mask.shape[1])
    if return_mask:
        response.mask = mask_image(mask, frame.header)
    stamp = frame.header.stamp
    return f"on the {mask.shape[1]}x{mask.shape[0]} frame stamped {stamp.sec}.{stamp.nanosec:09d}"


def service_handler(method):
    """Run a handler method; a Refused/ValueError becomes success=false on a fresh response,
    anything else is reported as an internal error and logged (`self.log_error`). Never raises.
    Responses with a `class_map` field get the current one (`self.class_map()`) either way."""
    @functools.wraps(method)
    def wrapper(self, request, response):
        try:
            method(self, request, response)
            response.success = True
            return response
        except Exception as exc:  # noqa: BLE001 - a service must answer, whatever happened
            fresh = type(response)()
            fresh.success = False
            if isinstance(exc, ValueError):
                fresh.message = f"refused: {exc}"
            else:
                fresh.message = f"internal error: {exc!r}"
                self.log_error(f"{method.__name__} failed: {traceback.format_exc()}")
            if hasattr(fresh, "class_map"):
                try:
                    fresh.class_map = self.class_map()
                except Exception:  # noqa: BLE001
                    pass
            return fresh
    return wrapper
