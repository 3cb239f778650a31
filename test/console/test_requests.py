"""The API's body checks (rns_ros/console/requests.py): every field refused with its reason, and a
scribble rasterised as the strokes' geometry says (checked against distances computed here)."""
from __future__ import annotations

import numpy as np
import pytest

from rns_ros.console.requests import (BadRequest, parse_exemplar, parse_freeze, parse_memory,
                                      parse_new_classes, rasterise_strokes)

FRAME = (48, 64)  # (H, W)
BASE = {"camera": "default", "frame": "f1", "class": "mug"}


def test_a_box_points_and_a_scribble_are_parsed_in_frame_pixels():
    req = parse_exemplar({**BASE, "box": [1, 2, 30, 40], "preview": True}, FRAME)
    assert (req.kind, req.box, req.preview, req.create_class) == ("box", (1.0, 2.0, 30.0, 40.0), True, False)
    req = parse_exemplar({**BASE, "points": [{"x": 3, "y": 4, "positive": True}, {"x": 60.5, "y": 47.5,
                                                                                 "positive": False}]}, FRAME)
    assert req.points == ((3.0, 4.0), (60.5, 47.5)) and req.point_labels == (True, False)
    req = parse_exemplar({**BASE, "scribble": {"width": 3, "strokes": [[[10, 10], [20, 10]]]}}, FRAME)
    assert req.scribble.shape == FRAME and req.scribble[10, 15] and not req.scribble[30, 15]
    req = parse_exemplar({**BASE, "preview_id": "p3", "create_class": True}, FRAME)
    assert (req.kind, req.preview_id, req.create_class) == ("preview", "p3", True)


@pytest.mark.parametrize("extra, says", [
    ({}, "exactly one of"),
    ({"box": [1, 2, 3, 4], "points": [{"x": 1, "y": 1, "positive": True}]}, "exactly one of"),
    ({"box": [1, 2, 3]}, "box must be"),
    ({"box": [5, 2, 3, 4]}, "x_min < x_max"),
    ({"box": [0, 0, 65, 10]}, "not inside the 64x48 frame"),
    ({"box": [0, 0, float("nan"), 10]}, "finite number"),
    ({"box": [0, 0, "3", 10]}, "finite number"),
    ({"box": [0, 0, True, 10]}, "finite number"),
    ({"points": []}, "1..64"),
    ({"points": [{"x": 1, "y": 1, "positive": False}]}, "at least one point must be positive"),
    ({"points": [{"x": 64, "y": 1, "positive": True}]}, "outside the 64x48 frame"),
    ({"points": [{"x": 1, "y": -0.5, "positive": True}]}, "outside the 64x48 frame"),
    ({"points": [{"x": 1, "y": 1, "positive": 1}]}, "true or false"),
    ({"points": [{"x": 1, "y": 1}]}, "needs the field"),
    ({"points": [{"x": 1, "y": 1, "positive": True}] * 65}, "1..64"),
    ({"scribble": {"width": 0, "strokes": [[[1, 1]]]}}, "width must be"),
    ({"scribble": {"width": 3, "strokes": []}}, "1..64 strokes"),
    ({"scribble": {"width": 3, "strokes": [[]]}}, "non-empty"),
    ({"scribble": {"width": 3, "strokes": [[[1, 1, 1]]]}}, "[x, y]"),
    ({"scribble": {"width": 3, "strokes": [[[100, 1]]]}}, "outside"),
    ({"scribble": {"width": 3, "strokes": [[[1, 1]] * 4001]}}, "at most 4000 points"),
    ({"preview_id": "p1", "preview": True}, "cannot be previewed again"),
    ({"box": [1, 2, 3, 4], "colour": "red"}, "unknown field"),
    ({"box": [1, 2, 3, 4], "preview": "yes"}, "true or false"),
    ({"box": [1, 2, 3, 4], "class": ""}, "printable"),
    ({"box": [1, 2, 3, 4], "class": "a\x00b"}, "printable"),
])
def test_bad_exemplar_bodies_are_refused_naming_the_field(extra, says):
    with pytest.raises(BadRequest, match=None) as err:
        parse_exemplar({**BASE, **extra}, FRAME)
    assert says in str(err.value)


def test_missing_required_fields_and_non_objects_are_refused():
    for body in ([], "box", None, {"camera": "c", "frame": "f", "box": [1, 2, 3, 4]}):
        with pytest.raises(BadRequest):
            parse_exemplar(body, FRAME)


def test_scribble_pixels_are_those_within_half_the_width_of_the_strokes():
    lines = [[(10.0, 20.0), (50.0, 20.0), (50.0, 40.0)], [(5.0, 5.0)]]
    width = 6.0
    mask = rasterise_strokes(lines, width, FRAME)
    ys, xs = np.mgrid[0:FRAME[0], 0:FRAME[1]]
    dist = np.full(FRAME, np.inf)
    for line in lines:
        segments = list(zip(line, line[1:])) or [(line[0], line[0])]
        for (x0, y0), (x1, y1) in segments:
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
            dist = np.minimum(dist, np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy)))
    assert mask[dist <= width / 2 - 1].all()  # well inside: drawn
    assert not mask[dist > width / 2 + 1].any()  # well outside: not drawn


def test_freeze_classes_and_memory_bodies():
    assert parse_freeze({"camera": "front", "seq": 7}).seq == 7
    assert parse_new_classes({"name": "mug", "description": "a red mug"}).descriptions == ("a red mug",)
    assert parse_new_classes({"names": ["a", "b"]}).names == ("a", "b")
    with pytest.raises(BadRequest, match="not both"):
        parse_new_classes({"name": "a", "names": ["b"]})
    with pytest.raises(BadRequest, match='"names" must be a list'):
        parse_new_classes({"names": "a"})
    assert parse_memory({}, load=False).snapshot == ""
    assert parse_memory({"snapshot": "monday", "merge": True}, load=True).merge
    with pytest.raises(BadRequest, match="unknown field"):
        parse_memory({"directory": "/etc"}, load=False)
    with pytest.raises(BadRequest, match="give the snapshot to load"):
        parse_memory({}, load=True)
    with pytest.raises(BadRequest, match="unknown field"):
        parse_memory({"snapshot": "a", "merge": True}, load=False)
