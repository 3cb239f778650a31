"""The JSON bodies the API accepts, checked field by field before anything reaches the node.

Each `parse_*` takes the decoded JSON and returns a small frozen dataclass, or raises `BadRequest`
(HTTP 400) naming the field and what it must be. Unknown fields are refused, not ignored, so a
typo never silently changes what a request does. Coordinates are frame pixels (x right, y down,
origin at the top-left corner of the full-resolution camera frame), as the node's services take
them; a scribble's strokes are rasterised here into the mono8 mask the node expects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

MAX_NAME = 100  # characters of a class name
MAX_NAMES = 32  # class names in one request
MAX_POINTS = 64  # clicked points of one exemplar
MAX_STROKES = 64  # strokes of one scribble
MAX_STROKE_POINTS = 4000  # points of all strokes together
MAX_BRUSH = 256  # scribble brush width in frame pixels


class BadRequest(ValueError):
    """A request body the console refuses (HTTP 400); the message names the field and the fix."""


def _object(body, what: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown} in {what}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(body))
    if missing:
        raise BadRequest(f"{what} needs the field(s) {missing}")
    return body


def _bool(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, got {value!r}")
    return value


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _string(value, what: str, max_len: int = MAX_NAME) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string, got {value!r}")
    if not value.strip() or len(value) > max_len or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise BadRequest(f"{what} must be 1..{max_len} printable characters, got {value!r}")
    return value


def class_name(value, what: str = "class") -> str:
    """A class name as the node takes it: printable, 1..100 characters, not blank."""
    return _string(value, what)


@dataclass(frozen=True)
class NewClasses:
    names: tuple[str, ...]
    descriptions: tuple[str, ...]  # empty, or one per name ('' = the name)


def parse_new_classes(body) -> NewClasses:
    """`{"name": "mug"}` or `{"names": ["mug", "chair"]}`, optionally with `"description"` /
    `"descriptions"` (a text prompt per name)."""
    body = _object(body, "the request", {"name", "names", "description", "descriptions"})
    if ("name" in body) == ("names" in body):
        raise BadRequest('give "name" (one class) or "names" (a list), not both or neither')
    if "name" in body:
        names = [body["name"]]
        descriptions = [body["description"]] if "description" in body else []
        if "descriptions" in body:
            raise BadRequest('with "name" give "description", not "descriptions"')
    else:
        names = body["names"]
        descriptions = body.get("descriptions", [])
        if "description" in body:
            raise BadRequest('with "names" give "descriptions", not "description"')
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_NAMES:
            raise BadRequest(f'"names" must be a list of 1..{MAX_NAMES} class names')
        if not isinstance(descriptions, list):
            raise BadRequest('"descriptions" must be a list')
    names = [class_name(n, "class name") for n in names]
    if descriptions and len(descriptions) != len(names):
        raise BadRequest(f"{len(descriptions)} descriptions for {len(names)} names: give one per name or none")
    descriptions = [d if d == "" else _string(d, "description", 1000) for d in descriptions]
    return NewClasses(tuple(names), tuple(descriptions))


@dataclass(frozen=True)
class Freeze:
    camera: str
    seq: int  # the picture the page shows (its X-Seq)


def parse_freeze(body) -> Freeze:
    """`{"camera": "default", "seq": 12}`: freeze the picture `seq` of that camera's feed."""
    body = _object(body, "the request", {"camera", "seq"}, {"camera", "seq"})
    seq = body["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise BadRequest(f"seq must be the non-negative integer of a picture the page showed, got {seq!r}")
    return Freeze(_string(body["camera"], "camera", 64), seq)


@dataclass(frozen=True)
class ExemplarRequest:
    camera: str
    frame: str  # the id `POST /api/frames` gave the frozen frame
    class_name: str
    create_class: bool
    preview: bool  # true = a dry run: the node checks everything and returns the mask, stores nothing
    kind: str  # "box", "points", "scribble" or "preview" (store a previewed mask)
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[bool, ...] = ()
    scribble: np.ndarray | None = None  # (H, W) bool, frame size
    preview_id: str = ""


ANNOTATIONS = ("box", "points", "scribble", "preview_id")


def parse_exemplar(body, frame_size: tuple[int, int] | None = None) -> ExemplarRequest:
    """Check a `POST /api/exemplars` body. frame_size: (H, W) of the frozen frame, against which
    boxes, points and strokes are checked (None: only their form is checked)."""
    body = _object(body, "the request", {"camera", "frame", "class", "create_class", "preview", *ANNOTATIONS},
                   {"camera", "frame", "class"})
    present = [k for k in ANNOTATIONS if k in body]
    if len(present) != 1:
        raise BadRequest(f"give exactly one of {list(ANNOTATIONS)}, got {present or 'none'}")
    kind = present[0]
    common = dict(camera=_string(body["camera"], "camera", 64), frame=_string(body["frame"], "frame", 64),
                  class_name=class_name(body["class"]), create_class=_bool(body, "create_class"),
                  preview=_bool(body, "preview"))
    if kind == "preview_id":
        if common["preview"]:
            raise BadRequest("preview_id stores a previewed mask: it cannot be previewed again")
        return ExemplarRequest(**common, kind="preview", preview_id=_string(body["preview_id"], "preview_id", 64))
    if kind == "box":
        return ExemplarRequest(**common, kind="box", box=_box(body["box"], frame_size))
    if kind == "points":
        points, labels = _points(body["points"], frame_size)
        return ExemplarRequest(**common, kind="points", points=points, point_labels=labels)
    return ExemplarRequest(**common, kind="scribble", scribble=_scribble(body["scribble"], frame_size))


def _inside(x: float, y: float, frame_size, what: str) -> None:
    if frame_size is not None:
        h, w = frame_size
        if not (0 <= x < w and 0 <= y < h):
            raise BadRequest(f"{what} ({x:g}, {y:g}) is outside the {w}x{h} frame")


def _box(value, frame_size) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise BadRequest(f"box must be [x_min, y_min, x_max, y_max] in frame pixels, got {value!r}")
    x0, y0, x1, y1 = (_number(v, "box coordinate") for v in value)
    if not (x0 < x1 and y0 < y1):
        raise BadRequest(f"box needs x_min < x_max and y_min < y_max, got {value}")
    if frame_size is not None:
        h, w = frame_size
        if not (0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h):
            raise BadRequest(f"box {value} is not inside the {w}x{h} frame")
    return (x0, y0, x1, y1)


def _points(value, frame_size) -> tuple[tuple[tuple[float, float], ...], tuple[bool, ...]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_POINTS:
        raise BadRequest(f'points must be a list of 1..{MAX_POINTS} {{"x", "y", "positive"}} objects')
    points, labels = [], []
    for i, item in enumerate(value):
        item = _object(item, f"point {i}", {"x", "y", "positive"}, {"x", "y", "positive"})
        x, y = _number(item["x"], f"point {i} x"), _number(item["y"], f"point {i} y")
        _inside(x, y, frame_size, f"point {i}")
        points.append((x, y))
        labels.append(_bool(item, "positive"))
    if not any(labels):
        raise BadRequest("at least one point must be positive (on the object)")
    return tuple(points), tuple(labels)


def _scribble(value, frame_size) -> np.ndarray:
    value = _object(value, "scribble", {"width", "strokes"}, {"width", "strokes"})
    width = _number(value["width"], "scribble width")
    if not 1 <= width <= MAX_BRUSH:
        raise BadRequest(f"scribble width must be 1..{MAX_BRUSH} frame pixels, got {width:g}")
    strokes = value["strokes"]
    if not isinstance(strokes, list) or not 1 <= len(strokes) <= MAX_STROKES:
        raise BadRequest(f"scribble strokes must be a list of 1..{MAX_STROKES} strokes ([[x, y], ...])")
    if frame_size is None:
        raise BadRequest("a scribble needs the frozen frame's size")
    total = 0
    lines = []
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, list) or not stroke:
            raise BadRequest(f"stroke {i} must be a non-empty list of [x, y] points")
        total += len(stroke)
        if total > MAX_STROKE_POINTS:
            raise BadRequest(f"a scribble has at most {MAX_STROKE_POINTS} points")
        line = []
        for point in stroke:
            if not isinstance(point, list) or len(point) != 2:
                raise BadRequest(f"stroke {i} points must be [x, y], got {point!r}")
            x, y = _number(point[0], "stroke x"), _number(point[1], "stroke y")
            _inside(x, y, frame_size, f"stroke {i} point")
            line.append((x, y))
        lines.append(line)
    return rasterise_strokes(lines, width, frame_size)


def rasterise_strokes(lines: list[list[tuple[float, float]]], width: float, frame_size) -> np.ndarray:
    """(H, W) bool: the strokes drawn `width` pixels wide (round ends and joints)."""
    h, w = frame_size
    canvas = PILImage.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    radius = width / 2.0
    for line in lines:
        if len(line) > 1:
            draw.line(line, fill=255, width=max(1, int(round(width))))
        for x, y in line:  # round joints and ends; a single point is a dot
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(canvas) > 0


@dataclass(frozen=True)
class MemoryRequest:
    snapshot: str  # '' = the node's own memory_dir
    merge: bool = False


def parse_memory(body, *, load: bool) -> MemoryRequest:
    """`{}` (the node's memory_dir) or `{"snapshot": "name"}`; load also takes `"merge": true`.
    Paths are never accepted: the snapshot name is checked by security.snapshot_path."""
    allowed = {"snapshot", "merge"} if load else {"snapshot"}
    body = _object(body, "the request", allowed)
    snapshot = body.get("snapshot", "")
    if not isinstance(snapshot, str):
        raise BadRequest(f"snapshot must be a snapshot name, got {snapshot!r}")
    if load and not snapshot:
        raise BadRequest("give the snapshot to load: the node's own memory_dir is what it runs on already")
    return MemoryRequest(snapshot, _bool(body, "merge") if load else False)
