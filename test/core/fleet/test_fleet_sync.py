"""FleetSync, the merge rules of the fleet's shared memory, on plain SupportMemory objects: robots
are (memory, sync) pairs, and a message travels by handing one robot's FleetUpdate to another's
`receive` (the ROS transport is tested in test/ros/test_fleet_nodes.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rns_ros.core.adapter.config import AdapterConfig
from rns_ros.core.adapter.test_time import TestTimeAdapter
from rns_ros.core.fleet.items import ClassState, FleetLimits
from rns_ros.core.fleet.sync import FleetSync
from rns_ros.core.memory.exemplars import Exemplar
from rns_ros.core.memory.persistence import load_memory, save_memory
from rns_ros.core.memory.support import SupportMemory

D = 16


class Robot:
    """One robot: a memory and its sync; `changed()` is what the node does after a local teach."""

    def __init__(self, name: str, identity: str = "bb", dim: int = D, **options):
        self.name = name
        self.memory = SupportMemory(dim, backbone_identity=identity)
        self.sync = FleetSync(f"/{name}/rns@host", session=f"{name}-1", **options)
        self.sync.attach(self.memory)
        self.rng = np.random.default_rng(abs(hash(name)) % 2**32)

    def unit(self, *shape):
        x = torch.from_numpy(self.rng.standard_normal(shape).astype(np.float32))
        return x / x.norm(dim=-1, keepdim=True)

    def teach(self, class_name: str, with_text: bool = True) -> int:
        names = {c.name: c.id for c in self.memory.classes}
        cid = names.get(class_name) or self.memory.add_class(class_name, self.unit(D) if with_text else None)
        labels = np.zeros((8, 8), np.int64)
        labels[2:6, 2:6] = cid
        image = self.rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return self.memory.add_image_features(self.unit(1, D), [cid], exemplar=Exemplar(image, labels))

    def changed(self):
        return self.sync.local_changes(self.memory)

    def receive(self, update):
        return self.sync.receive(update, self.memory)

    def state(self):
        """Everything a frame's prediction depends on: classes (name, text) in id order and V."""
        feats, classes = self.memory.bank()
        names = {c.id: c.name for c in self.memory.classes}
        texts = [(c.name, None if self.memory.text_feature(c.id) is None else
                  self.memory.text_feature(c.id).numpy().tobytes()) for c in self.memory.classes]
        return texts, feats.numpy().tobytes(), [names[int(c)] for c in classes]


def test_a_teach_reaches_the_others_bit_for_bit_and_predicts_the_same():
    a, b, c = Robot("a"), Robot("b"), Robot("c")
    a.teach("mug")
    a.teach("mug")
    a.teach("floor")
    update = a.changed()
    assert update is not None and update.sequence == 1 and not update.snapshot
    assert [s.name for s in update.classes] == ["mug", "floor"] and len(update.exemplars_added) == 3
    for robot in (b, c):
        receipt = robot.receive(update)
        assert receipt.memory_changed and receipt.merged == 5 and not receipt.refused
        assert robot.memory.num_exemplars == 3
    assert b.state() == a.state() == c.state()
    queries = a.unit(40, D)
    adapter = TestTimeAdapter(AdapterConfig(seed=0, steps=30))
    assert torch.equal(adapter.predict(queries, a.memory), adapter.predict(queries, b.memory))
    # each exemplar says where it came from
    origins = {o for cls in b.memory.classes for o in cls.exemplar_origins}
    assert origins == {"/a/rns@host"} and {o for cls in a.memory.classes for o in cls.exemplar_origins} == {None}


def test_receiving_twice_changes_nothing_and_nothing_is_echoed():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    update = a.changed()
    b.receive(update)
    version = b.memory.version
    again = b.receive(update)
    assert not again.memory_changed and again.merged == 0 and b.memory.version == version
    assert again.skipped == {"class held": 1, "exemplar held": 1}
    assert b.changed() is None  # what B received is not B's change: never re-published
    b.receive(a.sync.snapshot(a.memory))
    assert b.memory.version == version and b.changed() is None
    assert a.receive(update).own  # A hears its own message: nothing to do
    assert a.changed() is None


def test_a_removal_travels_wins_over_every_add_and_survives_a_restart(tmp_path):
    a, b, c = Robot("a"), Robot("b"), Robot("c")
    a.teach("mug")
    a.teach("mug")
    added = a.changed()
    stale_snapshot = a.sync.snapshot(a.memory)
    for robot in (b, c):
        robot.receive(added)
    gone = next(e for e in b.memory.exemplar_ids if b.memory.exemplar_origin(e))  # any of A's two
    b.memory.remove_exemplar(gone)
    removal = b.changed()
    assert len(removal.exemplars_removed) == 1 and not removal.exemplars_added and not removal.classes
    for robot in (a, c):
        assert robot.receive(removal).merged == 1
        assert robot.memory.num_exemplars == 1
    # the old add and the old snapshot do not bring it back, on any robot
    for robot in (a, b, c):
        robot.receive(added)
        robot.receive(stale_snapshot)
        assert robot.memory.num_exemplars == 1
    assert c.sync.skips["exemplar removed before"] == 2
    assert a.changed() is None and c.changed() is None  # a merged removal is not echoed either
    # C restarts from its saved memory: the tombstone came back with it
    save_memory(c.memory, tmp_path / "c")
    restarted, report = load_memory(tmp_path / "c")
    assert report.ok
    c2 = Robot("c")
    c2.memory = restarted
    c2.sync = FleetSync("/c/rns@host", session="c-2")
    c2.sync.attach(restarted)
    c2.receive(stale_snapshot)
    c2.receive(added)
    assert restarted.num_exemplars == 1 and c2.state() == a.state()


def test_merged_items_persist_and_are_not_duplicated_after_a_restart(tmp_path):
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    a.teach("floor", with_text=False)
    b.receive(a.changed())
    save_memory(b.memory, tmp_path / "b")
    loaded, report = load_memory(tmp_path / "b")
    assert report.ok
    b2 = Robot("b")
    b2.memory, b2.sync = loaded, FleetSync("/b/rns@host", session="b-2")
    b2.sync.attach(loaded)
    version = loaded.version
    receipt = b2.receive(a.sync.snapshot(a.memory))
    assert receipt.merged == 0 and loaded.version == version and loaded.num_exemplars == 2
    assert b2.state() == a.state()
    assert b2.changed() is None  # nothing looks like a local change after the restart
    assert {o for cls in loaded.classes for o in cls.exemplar_origins} == {"/a/rns@host"}


def test_a_late_joiner_catches_up_from_one_snapshot_with_the_removals():
    a, b = Robot("a"), Robot("b")
    for name in ("mug", "mug", "floor", "chair"):
        a.teach(name)
    b.receive(a.changed())
    b.memory.remove_exemplar(b.memory.class_record(b.memory.class_id("chair")).exemplar_ids[0])
    b.memory.remove_class(b.memory.class_id("floor"))
    a.receive(b.changed())
    late = Robot("late")
    late.receive(a.sync.snapshot(a.memory))
    assert late.state() == a.state() == b.state()
    assert sorted(c.name for c in late.memory.classes) == ["chair", "mug"]
    late.receive(b.sync.snapshot(b.memory))  # a second snapshot adds nothing
    assert late.state() == a.state()


def test_class_removal_and_re_adding_go_by_the_latest_stamp():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    b.receive(a.changed())
    old_snapshot = a.sync.snapshot(a.memory)
    b.memory.remove_class(b.memory.class_id("mug"))
    removal = b.changed()
    assert [(s.name, s.removed) for s in removal.classes] == [("mug", True)]
    a.receive(removal)
    assert a.memory.classes == [] and a.memory.num_exemplars == 0
    b.receive(old_snapshot)  # older than the removal: mug stays removed
    assert b.memory.classes == []
    assert b.sync.skips["class stale"] == 1
    a.teach("mug")  # taught again later: a newer stamp, so it comes back everywhere
    b.receive(a.changed())
    assert [c.name for c in b.memory.classes] == ["mug"] and b.memory.num_exemplars == 1
    b.receive(removal)  # the old removal, replayed, does not undo the newer add
    assert [c.name for c in b.memory.classes] == ["mug"]


def test_classes_already_held_keep_their_own_text():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    b.teach("mug")
    own_text = b.memory.text_feature(b.memory.class_id("mug"))
    b.changed()
    b.receive(a.changed())
    assert torch.equal(b.memory.text_feature(b.memory.class_id("mug")), own_text)
    assert b.memory.num_exemplars == 2  # both exemplars of mug


def test_another_backbone_is_refused_and_counted_and_changes_nothing():
    a, other, wider = Robot("a"), Robot("o", identity="another"), Robot("w", dim=2 * D)
    a.teach("mug")
    update = a.changed()
    for robot in (other, wider):
        version = robot.memory.version
        receipt = robot.receive(update)
        assert receipt.refused and "backbone" in receipt.refused[0] and not receipt.save_needed
        assert robot.memory.version == version and robot.memory.classes == []
        assert robot.sync.refusals == {"other backbone": 1}
        assert robot.sync.peers["/a/rns@host"].refused == 1


def test_accept_from_filters_the_senders():
    a, b = Robot("a"), Robot("b")
    picky = Robot("p", accept_from=["/b/rns@host"])
    a.teach("mug")
    b.teach("floor")
    picky.receive(a.changed())
    picky.receive(b.changed())
    assert [c.name for c in picky.memory.classes] == ["floor"]
    assert picky.sync.refusals == {"not in accept_from": 1}


def test_a_duplicate_robot_id_is_refused_and_reported():
    a, twin = Robot("a"), Robot("a")
    twin.sync.session = "a-other"
    twin.teach("mug")
    receipt = a.receive(twin.changed())
    assert receipt.refused and a.memory.classes == []
    assert a.sync.duplicate_sessions == {"a-other"}
    assert "fleet_duplicate_robot_id" in a.sync.summary()


def _refused_without_change(robot, update, kind):
    version, ledger = robot.memory.version, dict(robot.memory.ledger)
    receipt = robot.receive(update)
    assert receipt.refused and not receipt.save_needed, receipt
    assert robot.memory.version == version and robot.memory.ledger == ledger
    assert robot.sync.refusals[kind] >= 1
    return receipt.refused[0]


def test_malformed_messages_are_refused_counted_and_never_reach_the_memory():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    good = a.changed()
    ex = good.exemplars_added[0]

    def with_exemplar(**changes):
        return dataclasses.replace(good, exemplars_added=(dataclasses.replace(ex, **changes),))

    wrong_size = ex.features[:, : D // 2].copy()
    assert "shape" in _refused_without_change(b, with_exemplar(features=wrong_size), "malformed")
    nan = ex.features.copy()
    nan[0, 3] = np.nan
    assert "NaN" in _refused_without_change(b, with_exemplar(features=nan), "malformed")
    inf = ex.features.copy()
    inf[0, 0] = np.inf
    assert "inf" in _refused_without_change(b, with_exemplar(features=inf), "malformed")
    scaled = ex.features * 3
    assert "unit-norm" in _refused_without_change(b, with_exemplar(features=scaled), "malformed")
    other = ex.features[:, ::-1].copy()
    assert "hash" in _refused_without_change(b, with_exemplar(features=other), "malformed")
    text = dataclasses.replace(good, classes=(dataclasses.replace(good.classes[0], text=np.ones(D + 1, np.float32)),))
    assert "text feature" in _refused_without_change(b, text, "malformed")
    removal = dataclasses.replace(good, classes=(ClassState("never heard of", removed=True, clock=9, clock_robot="x"),),
                                  exemplars_added=())
    assert "never held" in _refused_without_change(b, removal, "unknown class")
    small = Robot("s", limits=FleetLimits(max_message_bytes=4 * D - 1))
    assert "above the limit" in _refused_without_change(small, good, "too large")
    assert b.memory.classes == [] and b.sync.merged == 0
    assert b.receive(good).merged == 2  # the good message still merges afterwards


def test_held_exemplars_are_skipped_unread_and_new_ones_checked_in_full():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    b.receive(a.changed())
    snapshot = a.sync.snapshot(a.memory)
    held = snapshot.exemplars_added[0]
    garbled = dataclasses.replace(held, features=np.full_like(held.features, np.nan))  # its hash, not its content
    version = b.memory.version
    receipt = b.receive(dataclasses.replace(snapshot, exemplars_added=(garbled,)))
    assert not receipt.refused and receipt.skipped["exemplar held"] == 1 and b.memory.version == version
    a.teach("mug")
    fresh = a.sync.snapshot(a.memory).exemplars_added[1]
    bad = dataclasses.replace(snapshot, exemplars_added=(garbled, dataclasses.replace(fresh, features=-fresh.features)))
    assert "hash" in _refused_without_change(b, bad, "malformed")


def test_an_exemplar_of_a_class_the_receiver_does_not_hold_is_refused_and_counted():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    update = a.changed()
    orphan = dataclasses.replace(update, classes=())  # its class never arrived
    receipt = b.receive(orphan)
    assert receipt.refused and "does not hold" in receipt.refused[0] and b.memory.num_exemplars == 0
    assert b.sync.refusals == {"unknown class": 1}
    b.receive(a.sync.snapshot(a.memory))  # the snapshot heals it
    assert b.state() == a.state()


def test_classes_past_the_receivers_id_ceiling_are_refused_with_their_exemplars():
    a = Robot("a")
    b = Robot("b", class_id_allowed=lambda class_id: class_id <= 2)
    b.memory.add_class("wall")  # id 1
    b.changed()
    for name in ("mug", "floor"):
        a.teach(name)
    receipt = b.receive(a.changed())
    assert [c.name for c in b.memory.classes] == ["wall", "mug"] and b.memory.num_exemplars == 1
    assert b.sync.refusals == {"class id ceiling": 1, "unknown class": 1}
    assert any("would get id 3" in r for r in receipt.refused)


def test_missed_changes_are_counted_per_peer():
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    first = a.changed()
    a.teach("mug")
    a.changed()  # lost on the way
    a.teach("mug")
    third = a.changed()
    b.receive(first)
    b.receive(third)
    peer = b.sync.peers["/a/rns@host"]
    assert (peer.missed, peer.last_sequence, peer.messages, peer.merged) == (1, 3, 2, 3)
    assert "missed" in b.sync.summary()["fleet_peer /a/rns@host"]


def test_shared_masks_travel_renumbered_to_the_receivers_class_ids():
    a, b = Robot("a", share_masks=True), Robot("b", share_masks=True)
    b.memory.add_class("other")  # B's ids differ from A's
    b.changed()
    eid = a.teach("mug")
    b.receive(a.changed())
    got = b.memory.exemplar(b.memory.exemplar_ids[0])
    sent = a.memory.exemplar(eid)
    assert got is not None and np.array_equal(got.image, sent.image)
    assert np.array_equal(got.labels != 0, sent.labels != 0)
    assert set(np.unique(got.labels)) == {0, b.memory.class_id("mug")}
    plain = Robot("plain")  # share_masks off: features only
    plain.receive(a.sync.snapshot(a.memory))
    assert plain.memory.exemplar(plain.memory.exemplar_ids[0]) is None


def test_exemplars_of_nameless_classes_stay_local():
    a, b = Robot("a"), Robot("b")
    blob = a.memory.add_class(None)
    a.memory.add_image_features(a.unit(1, D), [blob])
    assert a.changed() is None
    b.receive(a.sync.snapshot(a.memory))
    assert b.memory.classes == []


def test_a_replaced_memory_is_diffed_like_any_local_change_and_keeps_both_ledgers(tmp_path):
    """~/load_support without merge swaps the memory object: what the loaded one lacks is removed in
    the fleet, what it adds is published, and the removals remembered by either survive."""
    a, b = Robot("a"), Robot("b")
    a.teach("mug")
    a.teach("mug")
    b.receive(a.changed())
    a.memory.remove_exemplar(a.memory.exemplar_ids[0])
    b.receive(a.changed())  # one removal known to both
    backup = Robot("backup")
    backup.teach("floor")
    backup.teach("floor")
    backup.changed()
    backup.memory.remove_exemplar(backup.memory.exemplar_ids[0])
    backup.changed()  # the backup remembers a removal of its own
    save_memory(backup.memory, tmp_path / "backup")
    loaded, _ = load_memory(tmp_path / "backup")
    update = a.sync.local_changes(loaded)
    assert [(s.name, s.removed) for s in update.classes] == [("floor", False), ("mug", True)]
    assert len(update.exemplars_added) == 1 and len(update.exemplars_removed) == 1
    # A's earlier removal, the backup's, and the one the load made
    assert len(a.sync.ledger.removed_exemplars) == 3 and backup.sync.ledger.removed_exemplars < a.sync.ledger.removed_exemplars
    b.receive(update)
    a.memory = loaded
    assert b.state() == a.state() and [c.name for c in b.memory.classes] == ["floor"]
