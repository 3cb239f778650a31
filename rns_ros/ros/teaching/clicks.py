"""Teach by click: a clicked pixel (geometry_msgs/PointStamped on ~/click, e.g. from an image view
tool) becomes an exemplar of the class named by the `teach_class` parameter, through a SAM 2
point prompt on the latest camera frame.

    ros2 param set /rns teach_class "my mug"
    ros2 topic pub --once /rns/click geometry_msgs/msg/PointStamped "{point: {x: 160.0, y: 100.0}}"

`click_request` builds the same AddExemplar request that ~/add_exemplar takes (empty image = the
latest frame, one positive point, create_class=true), so a click is checked, applied, saved and
answered exactly like a service call; `ClickTeacher.on_click` logs the outcome. With several
cameras, `frame_for(click)` picks the frame the click refers to (its camera's newest).
"""
from __future__ import annotations

from typing import Callable

from geometry_msgs.msg import Point32, PointStamped
from sensor_msgs.msg import Image

from rns_ros.core.memory.names import shorten
from rns_ros.srv import AddExemplar


def click_request(click: PointStamped, class_name: str) -> AddExemplar.Request:
    """AddExemplar request: latest frame, one positive point at the click's (x, y), create the class."""
    request = AddExemplar.Request(class_name=class_name, create_class=True)
    request.points = [Point32(x=float(click.point.x), y=float(click.point.y), z=0.0)]
    request.point_labels = [True]
    return request


class ClickTeacher:
    """Turns clicks into `teacher.add_exemplar` calls for the class `class_name()` names."""

    def __init__(self, teacher, class_name: Callable[[], str], log_info: Callable[[str], None],
                 log_warning: Callable[[str], None],
                 frame_for: Callable[[PointStamped], Image | None] = lambda click: None):
        self.teacher = teacher
        self.frame_for = frame_for  # the frame clicked on (None = the latest frame); ValueError = ignore
        self.class_name = class_name
        self.log_info = log_info
        self.log_warning = log_warning
        self.last_response: AddExemplar.Response | None = None

    def on_click(self, click: PointStamped) -> AddExemplar.Response | None:
        name = self.class_name().strip()
        if not name:
            self.log_warning("click ignored: set the teach_class parameter to the class the clicks teach")
            return None
        request = click_request(click, name)
        try:
            frame = self.frame_for(click)
        except ValueError as exc:
            self.log_warning(f"click ignored: {exc}")
            return None
        if frame is not None:
            request.image = frame
        response = self.teacher.add_exemplar(request, AddExemplar.Response())
        self.last_response = response
        text = f"click at ({click.point.x:.0f}, {click.point.y:.0f}) for {shorten(name)}: {response.message}"
        # One severity per call site: rclpy refuses a call site whose severity changes between calls.
        if response.success:
            self.log_info(text)
        else:
            self.log_warning(text)
        return response
