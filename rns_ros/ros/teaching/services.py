"""Wiring of the teaching interfaces onto the node: the nine services (~/add_classes ... ~/enable)
and teach by click (~/click). The handlers themselves are `Teacher` methods (teacher.py), which
keep the services' contract; this module only names and registers them.

All share one reentrant callback group, so a slow SAM 2 prompt blocks no frame and no other call.
Every callback goes through the node's CallbackGuard (guard.py): an error inside one is logged and
counted, a service still answers, and the node keeps serving.
"""
from __future__ import annotations

from typing import Callable, Mapping

from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.service import Service
from std_srvs.srv import SetBool

from rns_ros import srv
from rns_ros.ros.guard import CallbackGuard, failed_response
from rns_ros.ros.teaching.clicks import ClickTeacher
from rns_ros.ros.teaching.teacher import Teacher


ClickFrames = Mapping[str, Callable[[PointStamped], object]]


class TeachingInterfaces:
    """The teaching services and the click subscriptions of one node, created on construction and
    removed by destroy(). teach_class: () -> the class name clicks teach (the `teach_class`
    parameter). clicks: click topic -> frame_for(click) (see ClickTeacher); default: ~/click on the
    latest frame."""

    def __init__(self, node, teacher: Teacher, teach_class: Callable[[], str], guard: CallbackGuard,
                 clicks: ClickFrames | None = None):
        self._node = node
        group = ReentrantCallbackGroup()
        self.handles = [node.create_service(srv_type, name, guard.wrap(name, handler, failed_response),
                                            callback_group=group)
                        for srv_type, name, handler in (
                            (srv.AddClasses, "~/add_classes", teacher.add_classes),
                            (srv.RemoveClasses, "~/remove_classes", teacher.remove_classes),
                            (srv.AddExemplar, "~/add_exemplar", teacher.add_exemplar),
                            (srv.RemoveExemplars, "~/remove_exemplars", teacher.remove_exemplars),
                            (srv.ListClasses, "~/list_classes", teacher.list_classes),
                            (srv.SaveSupport, "~/save_support", teacher.save_support),
                            (srv.LoadSupport, "~/load_support", teacher.load_support),
                            (srv.Segment, "~/segment", teacher.segment),
                            (SetBool, "~/enable", teacher.enable))]
        logger = node.get_logger()
        for topic, frame_for in (clicks or {"~/click": lambda click: None}).items():
            teacher_of_clicks = ClickTeacher(teacher, teach_class, logger.info, logger.warning, frame_for)
            self.handles.append(node.create_subscription(PointStamped, topic,
                                                         guard.wrap(topic, teacher_of_clicks.on_click), 10,
                                                         callback_group=group))

    def destroy(self) -> None:
        for handle in self.handles:
            if isinstance(handle, Service):
                self._node.destroy_service(handle)
            else:
                self._node.destroy_subscription(handle)
        self.handles = []
