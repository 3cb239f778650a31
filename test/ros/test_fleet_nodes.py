"""Teach one robot, the fleet knows: four `rns_node` processes (test-tiny, CPU) in four namespaces,
each with its own memory directory, sharing one fleet topic, driven through their services as a
user does, and watched on the fleet topics and /diagnostics."""
from __future__ import annotations

import os
import socket
from collections import Counter

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray

from messages import make_image, random_rgb
from node_processes import start_node, stop
from rns_ros.msg import FleetChange
from rns_ros.ros.conversions import labels_from_image
from rns_ros.ros.fleet.link import CHANGES_QOS, SNAPSHOT_SUBSCRIPTION_QOS
from rns_ros.srv import AddClasses, AddExemplar, ListClasses, RemoveExemplars, Segment
from teaching_helpers import call

HOST = socket.gethostname()


def mask(h: int, w: int, rows: slice, cols: slice):
    m = np.zeros((h, w), np.uint8)
    m[rows, cols] = 255
    return make_image(m, "mono8")


class Fleet:
    """The node processes, a helper node's clients to their services, and what the helper saw."""

    def __init__(self, ros, tmp_path):
        self.ros, self.tmp_path = ros, tmp_path
        self.topic = f"/fleet_{os.getpid()}/memory"
        self.procs: dict[str, object] = {}
        self.helper = ros.node("fleet_watch")
        self.changes: list[FleetChange] = []
        self.snapshots: list[FleetChange] = []
        self.fleet_status: dict[str, dict[str, str]] = {}
        self.helper.create_subscription(FleetChange, self.topic, self.changes.append, CHANGES_QOS)
        self.helper.create_subscription(FleetChange, self.topic + "/snapshot", self.snapshots.append,
                                        SNAPSHOT_SUBSCRIPTION_QOS)
        self.helper.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._clients: dict[tuple, object] = {}

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": fleet"):
                self.fleet_status[status.name.split(":")[0]] = {kv.key: kv.value for kv in status.values}

    def start(self, robot: str, backbone: str = "test-tiny") -> None:
        proc, log = start_node(self.tmp_path, "rns", "-p", f"backbone:={backbone}", "-p", "device:=cpu",
                               "-p", "fleet.enabled:=true", "-p", f"fleet.topic:={self.topic}",
                               "-p", "fleet.snapshot_period_s:=0.2", "-p", "diagnostics_period_s:=0.2",
                               "-p", "adapter.steps:=20", namespace=f"/{robot}",
                               memory_dir=self.tmp_path / f"mem_{robot}")
        self.procs[robot] = (proc, log)

    def wait_started(self, *robots: str) -> None:
        for robot in robots:
            proc, log = self.procs[robot]
            client = self.client(robot, ListClasses, "list_classes")
            self.ros.wait_for(lambda: client.service_is_ready() or proc.poll() is not None, timeout=120,
                              what=f"node /{robot}/rns")
            assert proc.poll() is None, log.read_text()

    def stop(self, robot: str) -> None:
        proc, log = self.procs.pop(robot)
        assert stop(proc) == 0, log.read_text()[-3000:]

    def client(self, robot: str, srv_type, name: str):
        key = (robot, name)
        if key not in self._clients:
            self._clients[key] = self.helper.create_client(srv_type, f"/{robot}/rns/{name}")
        return self._clients[key]

    def call(self, robot: str, srv_type, name: str, request):
        res = call(self.ros, self.client(robot, srv_type, name), request, timeout=60)
        assert res.success, res.message
        return res

    def classes(self, robot: str) -> dict[str, object]:
        return {c.name: c for c in self.call(robot, ListClasses, "list_classes", ListClasses.Request()).class_map.classes}

    def counts(self, robot: str) -> dict[str, int]:
        return {name: c.exemplar_count for name, c in self.classes(robot).items()}

    def wait_counts(self, robot: str, expected: dict[str, int], what: str) -> None:
        self.ros.wait_for(lambda: self.counts(robot) == expected, timeout=60, what=f"{what} on {robot}: {expected}")

    def segment(self, robot: str, image) -> np.ndarray:
        """The labels of `image` on `robot`, as class names per pixel."""
        res = self.call(robot, Segment, "segment", Segment.Request(image=image))
        names = {c.id: c.name for c in res.class_map.classes} | {0: ""}
        return np.vectorize(names.get, otypes=[object])(labels_from_image(res.labels))

    def close(self) -> None:
        for proc, _ in self.procs.values():
            stop(proc)


@pytest.mark.slow
def test_teach_one_robot_and_the_fleet_knows(ros, tmp_path):
    fleet = Fleet(ros, tmp_path)
    try:
        for robot in ("a", "b", "c"):
            fleet.start(robot)
        fleet.start("d", backbone="test-tiny-dinotxt")  # another backbone: must refuse everything
        fleet.wait_started("a", "b", "c", "d")
        ros.wait_for(lambda: fleet.helper.count_publishers(fleet.topic) >= 4, timeout=30,
                     what="every node's publisher on the fleet topic")
        a_id = f"/a/rns@{HOST}"

        # --- taught on A: B and C hold the same, say where it came from, and predict the same
        image = make_image(random_rgb(48, 64, seed=1), "rgb8")
        fleet.call("a", AddClasses, "add_classes", AddClasses.Request(names=["mug", "floor"]))
        fleet.call("a", AddExemplar, "add_exemplar", AddExemplar.Request(
            class_name="mug", image=image, mask=mask(48, 64, slice(8, 30), slice(10, 40))))
        fleet.call("a", AddExemplar, "add_exemplar", AddExemplar.Request(
            class_name="floor", image=image, mask=mask(48, 64, slice(32, 48), slice(0, 64))))
        taught = {"mug": 1, "floor": 1}
        assert fleet.counts("a") == taught
        for robot in ("b", "c"):
            fleet.wait_counts(robot, taught, "A's teaching")
            assert {tuple(c.exemplar_origins) for c in fleet.classes(robot).values()} == {(a_id,)}
        assert {tuple(c.exemplar_origins) for c in fleet.classes("a").values()} == {("",)}
        frame = make_image(random_rgb(40, 56, seed=2), "rgb8")
        on_a = fleet.segment("a", frame)
        assert set(np.unique(on_a)) <= {"mug", "floor"}
        for robot in ("b", "c"):
            assert np.array_equal(fleet.segment(robot, frame), on_a), robot

        # --- another backbone refuses all of it, and says why
        ros.wait_for(lambda: int(fleet.fleet_status.get("/d/rns", {}).get("fleet_refused (other backbone)", 0)) >= 3,
                     timeout=30, what="D's refusals in /diagnostics")
        assert fleet.counts("d") == {}
        fleet.stop("d")

        # --- removed on B: gone on A and C
        fleet.call("b", RemoveExemplars, "remove_exemplars", RemoveExemplars.Request(class_name="floor"))
        removed = {"mug": 1, "floor": 0}
        for robot in ("a", "c"):
            fleet.wait_counts(robot, removed, "B's removal")

        # --- C stopped, more taught on A, C restarted: it catches up and holds nothing twice
        fleet.stop("c")
        fleet.call("a", AddExemplar, "add_exemplar", AddExemplar.Request(
            class_name="mug", image=make_image(random_rgb(48, 64, seed=3), "rgb8"),
            mask=mask(48, 64, slice(0, 20), slice(0, 20))))
        fleet.wait_counts("b", {"mug": 2, "floor": 0}, "A's second mug")
        fleet.start("c")
        fleet.wait_started("c")
        fleet.wait_counts("c", {"mug": 2, "floor": 0}, "the restarted C catching up")
        assert fleet.classes("c")["mug"].exemplar_ids != fleet.classes("c")["floor"].exemplar_ids
        ros.wait_for(lambda: int(fleet.fleet_status.get("/c/rns", {}).get("fleet_peers", 0)) >= 2, timeout=30,
                     what="C hearing A's and B's snapshots")
        assert fleet.counts("c") == {"mug": 2, "floor": 0}  # A's and B's snapshots added nothing twice
    finally:
        fleet.close()

    # --- the fleet topic carried exactly the four teaching calls on A and the removal on B: no echo
    by_robot = Counter(m.robot_id for m in fleet.changes)
    assert by_robot == {a_id: 4, f"/b/rns@{HOST}": 1}, by_robot
    for msg in fleet.changes:  # and each of them only what its sender was taught
        assert {e.origin for e in msg.exemplars_added} <= {msg.robot_id}
    # snapshots: one at each start, then at most one per change a node saw
    sessions = Counter(m.session for m in fleet.snapshots)
    assert len(sessions) == 5 and max(sessions.values()) <= 1 + len(fleet.changes), sessions
