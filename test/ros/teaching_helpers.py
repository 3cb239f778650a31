"""Shared pieces of the teaching tests: a real engine on the TEST-ONLY tiny backbone (built once,
new empty memory per engine), a fast fake SAM 2 masker, request builders, a service caller."""
from __future__ import annotations

import functools

import numpy as np
from geometry_msgs.msg import Point32

from messages import make_image
from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.test_time import TestTimeAdapter
from rns_ros.core.segmenter import Segmenter
from rns_ros.core.memory.support import SupportMemory
from rns_ros.ros.engine import RnsEngine
from rns_ros.srv import AddExemplar


@functools.lru_cache(maxsize=1)
def tiny_backbone():
    from rns_ros.core.backbones import build_backbone

    return build_backbone("test-tiny", device="cpu")


def tiny_engine(config=None) -> RnsEngine:
    """A real RnsEngine with an empty memory (random weights: labels mean nothing, ids do)."""
    backbone = tiny_backbone()
    memory = SupportMemory(dim=backbone.dim, backbone_identity=backbone.identity)
    return RnsEngine(Segmenter(backbone, memory, TestTimeAdapter(AdapterConfig(steps=2))), "cpu")


class BoxMasker:
    """Fake PromptMasker: the mask is the box, a 5x5 square around each positive point, or the
    scribble itself; records every prompt (so tests know SAM 2 was asked, and with what)."""

    def __init__(self):
        self.calls = []
        self.size = None

    def set_image(self, image):
        self.size = image.shape[:2]

    def reset(self):
        self.size = None

    def from_box(self, box):
        self.calls.append(("box", list(box)))
        mask = np.zeros(self.size, bool)
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[y0:y1, x0:x1] = True
        return mask

    def from_points(self, points, labels):
        self.calls.append(("points", np.asarray(points).tolist(), np.asarray(labels).tolist()))
        mask = np.zeros(self.size, bool)
        for (x, y), lab in zip(points, labels):
            if lab:
                mask[max(0, int(y) - 2):int(y) + 3, max(0, int(x) - 2):int(x) + 3] = True
        return mask

    def from_scribble(self, scribble):
        self.calls.append(("scribble", int(np.count_nonzero(scribble))))
        return np.asarray(scribble, bool).copy()


def mono8(mask: np.ndarray):
    return make_image((np.asarray(mask) != 0).astype(np.uint8) * 255, "mono8")


def exemplar_request(class_name, image=None, *, mask=None, box=(), points=(), labels=None, scribble=None,
                     create_class=False, return_mask=False) -> AddExemplar.Request:
    req = AddExemplar.Request(class_name=class_name, create_class=create_class, return_mask=return_mask)
    if image is not None:
        req.image = image
    if mask is not None:
        req.mask = mono8(mask)
    if scribble is not None:
        req.scribble = mono8(scribble)
    req.box = [float(v) for v in box]
    req.points = [Point32(x=float(x), y=float(y), z=0.0) for x, y in points]
    req.point_labels = [True] * len(points) if labels is None else [bool(v) for v in labels]
    return req


def square(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def call(ros, client, request, timeout=30.0):
    ros.wait_for(lambda: client.service_is_ready(), what=f"service {client.srv_name}")
    future = client.call_async(request)
    ros.wait_for(future.done, timeout, what=f"answer of {client.srv_name}")
    return future.result()
