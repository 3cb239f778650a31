"""The fleet link of a running node (in this process, on real topics): another robot's messages,
good and bad, arrive on fleet.topic from a plain publisher; what the node merges, refuses and
publishes is read back through its services, /diagnostics and the fleet topics themselves."""
from __future__ import annotations

import array
import dataclasses
import os

import numpy as np
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter

from rns_ros.core.fleet.items import ClassState
from rns_ros.core.fleet.sync import FleetSync
from rns_ros.core.memory.support import SupportMemory
from rns_ros.msg import FleetChange
from rns_ros.ros.fleet.link import CHANGES_QOS, SNAPSHOT_SUBSCRIPTION_QOS
from rns_ros.ros.fleet.messages import to_message
from rns_ros.ros.node import RnsNode
from rns_ros.srv import AddClasses, ListClasses, RemoveClasses
from teaching_helpers import call, tiny_backbone, tiny_engine


class OtherRobot:
    """A robot without a node: a memory and its FleetSync, publishing through a helper node."""

    def __init__(self, robot_id: str, identity: str, dim: int, session: str = "other-1"):
        self.memory = SupportMemory(dim, backbone_identity=identity)
        self.sync = FleetSync(robot_id, session)
        self.sync.attach(self.memory)
        self.rng = np.random.default_rng(7)

    def unit(self, *shape):
        x = torch.from_numpy(self.rng.standard_normal(shape).astype(np.float32))
        return x / x.norm(dim=-1, keepdim=True)

    def teach(self, name: str):
        names = {c.name: c.id for c in self.memory.classes}
        cid = names.get(name) or self.memory.add_class(name, self.unit(self.memory.dim))
        self.memory.add_image_features(self.unit(1, self.memory.dim), [cid])
        return self.sync.local_changes(self.memory)


def start(ros, tmp_path, topic: str, **params):
    overrides = [Parameter("memory_dir", value=str(tmp_path / "mem")), Parameter("fleet.enabled", value=True),
                 Parameter("fleet.topic", value=topic), Parameter("fleet.snapshot_period_s", value=0.1),
                 Parameter("diagnostics_period_s", value=0.1), Parameter("classes", value="wall")]
    overrides += [Parameter(k.replace("__", "."), value=v) for k, v in params.items()]
    node = ros.add(RnsNode(engine_factory=lambda cfg: tiny_engine(), context=ros.context, parameter_overrides=overrides))
    assert node.autostart_error is None, node.autostart_error
    return node


class FleetWatch:
    """A helper node on the fleet topics and /diagnostics: the node's publications, its fleet status."""

    def __init__(self, ros, topic: str, node_name: str):
        self.helper = ros.node(f"watch_{os.getpid()}")
        self.changes, self.snapshots, self.fleet_status = [], [], []
        self.helper.create_subscription(FleetChange, topic, self.changes.append, CHANGES_QOS)
        self.helper.create_subscription(FleetChange, topic + "/snapshot", self.snapshots.append,
                                        SNAPSHOT_SUBSCRIPTION_QOS)
        self.helper.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.fleet_status.extend(
            s for s in m.status if s.name == f"{node_name}: fleet"), 10)
        self.publisher = self.helper.create_publisher(FleetChange, topic, CHANGES_QOS)

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.fleet_status[-1].values} if self.fleet_status else {}


def test_a_node_merges_another_robots_teaching_and_publishes_only_its_own(ros, tmp_path):
    topic = f"/fleet_{os.getpid()}_merge/memory"
    node = start(ros, tmp_path, topic)
    watch = FleetWatch(ros, topic, "/rns")
    ros.wait_for(lambda: watch.publisher.get_subscription_count() >= 2 and watch.snapshots, timeout=20,
                 what="discovery and the node's first snapshot")
    assert watch.snapshots[-1].robot_id == node.fleet.sync.robot_id
    assert [c.name for c in watch.snapshots[-1].classes] == ["wall"]
    backbone = tiny_backbone()
    other = OtherRobot("/other/rns@elsewhere", backbone.identity, backbone.dim)
    watch.publisher.publish(to_message(other.teach("mug"), Time()))
    lister = watch.helper.create_client(ListClasses, "/rns/list_classes")

    def classes():
        return {c.name: c for c in call(ros, lister, ListClasses.Request()).class_map.classes}

    ros.wait_for(lambda: "mug" in classes(), timeout=20, what="the other robot's class")
    mug = classes()["mug"]
    assert mug.exemplar_count == 1 and list(mug.exemplar_origins) == ["/other/rns@elsewhere"]
    ros.wait_for(lambda: watch.values().get("fleet_items_merged") == "2", what="merged count in /diagnostics")
    assert "/other/rns@elsewhere" in " ".join(watch.values())
    # a local teach: one change, and the merge above was not echoed
    res = call(ros, watch.helper.create_client(AddClasses, "/rns/add_classes"), AddClasses.Request(names=["plate"]))
    assert res.success
    ros.wait_for(lambda: any(m.robot_id == node.fleet.sync.robot_id for m in watch.changes), what="the local change")
    own = [m for m in watch.changes if m.robot_id == node.fleet.sync.robot_id]
    assert [[c.name for c in m.classes] for m in own] == [["plate"]] and own[0].sequence == 1
    # the merge was saved like a teach: a restart holds it once
    node.close()
    ros.nodes.remove(node)
    node.destroy_node()
    again = start(ros, tmp_path, topic)
    names = [(e.name, len(e.exemplar_ids)) for e in again.engine.classes()]
    assert names == [("wall", 0), ("mug", 1), ("plate", 0)]


def test_a_catch_up_is_written_to_disk_while_frames_go_on(ros, tmp_path, monkeypatch):
    """A late joiner's first snapshot can bring thousands of exemplars: the node merges them under
    the engine lock but writes them to memory_dir after letting go of it, so frames do not wait."""
    import threading

    from rns_ros.core.memory import persistence

    topic = f"/fleet_{os.getpid()}_catchup/memory"
    node = start(ros, tmp_path, topic)
    watch = FleetWatch(ros, topic, "/rns")
    ros.wait_for(lambda: watch.publisher.get_subscription_count() >= 2, timeout=20, what="discovery")
    frames_during_writes, writes = [], []
    real_write = persistence.write_snapshot

    def write_while_a_frame_runs(snapshot, directory):
        def frame():  # the worker thread's part: the engine lock, then a frame
            if node.engine.lock.acquire(timeout=5):
                try:
                    frames_during_writes.append(node.engine.segment(np.zeros((24, 32, 3), np.uint8)).labels.shape)
                finally:
                    node.engine.lock.release()
        worker = threading.Thread(target=frame)
        worker.start()
        worker.join(10)
        written = real_write(snapshot, directory)
        writes.append(len(snapshot.exemplars))
        return written

    monkeypatch.setattr(persistence, "write_snapshot", write_while_a_frame_runs)
    backbone = tiny_backbone()
    other = OtherRobot("/other/rns@elsewhere", backbone.identity, backbone.dim)
    for i in range(50):
        other.teach(f"thing{i % 5}")
    other.sync.local_changes(other.memory)
    watch.publisher.publish(to_message(other.sync.snapshot(other.memory), Time()))
    ros.wait_for(lambda: 50 in writes, timeout=20, what="the catch-up merged and written")
    assert writes == [50] and frames_during_writes == [(24, 32)]  # a frame ran while it was written
    saved, _ = persistence.load_memory(tmp_path / "mem")
    assert saved.num_exemplars == 50


def test_bad_messages_are_refused_counted_and_change_nothing(ros, tmp_path):
    topic = f"/fleet_{os.getpid()}_bad/memory"
    node = start(ros, tmp_path, topic, fleet__max_message_mb=0.01)
    watch = FleetWatch(ros, topic, "/rns")
    ros.wait_for(lambda: watch.publisher.get_subscription_count() >= 2, what="discovery")
    backbone = tiny_backbone()
    other = OtherRobot("/other/rns@elsewhere", backbone.identity, backbone.dim)
    good = other.teach("mug")
    version = node.engine.support_version()

    def msg(update):
        return to_message(update, Time())

    short = msg(good)
    short.exemplars_added[0].features = array.array("f", short.exemplars_added[0].features[:-1])  # wrong size
    nan = msg(good)
    nan.exemplars_added[0].features[3] = float("nan")
    removal = msg(dataclasses.replace(good, exemplars_added=(), classes=(
        ClassState("never heard of", removed=True, clock=5, clock_robot="/other/rns@elsewhere"),)))
    huge = msg(dataclasses.replace(good, exemplars_added=good.exemplars_added * 100))  # 12.8 kB > 10 kB
    twin = msg(good)
    twin.robot_id, twin.session = node.fleet.sync.robot_id, "someone-else"
    stranger = OtherRobot("/other/rns@elsewhere", "openclip/another-backbone", backbone.dim)
    for bad in (short, nan, removal, huge, twin, msg(stranger.teach("mug"))):
        watch.publisher.publish(bad)
    expected = {"fleet_refused (malformed)": "2", "fleet_refused (unknown class)": "1",
                "fleet_refused (too large)": "1", "fleet_refused (duplicate robot_id)": "1",
                "fleet_refused (other backbone)": "1"}
    ros.wait_for(lambda: all(watch.values().get(k) == v for k, v in expected.items()), timeout=20,
                 what=f"the refusals in /diagnostics: {expected}")
    status = watch.fleet_status[-1]
    assert status.level == DiagnosticStatus.WARN and "another node" in status.message  # the duplicate id
    assert node.engine.support_version() == version and [e.name for e in node.engine.classes()] == ["wall"]
    assert not [m for m in watch.changes if m.session == node.fleet.sync.session]  # nothing of its own
    # the node is fine: the good message still merges, and local teaching still works
    watch.publisher.publish(msg(good))
    ros.wait_for(lambda: "mug" in [e.name for e in node.engine.classes()], what="the good message merged")
    res = call(ros, watch.helper.create_client(RemoveClasses, "/rns/remove_classes"),
               RemoveClasses.Request(names=["mug"]))
    assert res.success, res.message
