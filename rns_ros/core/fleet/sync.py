"""The merge rules of the fleet's shared memory: one robot's side of it, ROS-free.

    sync = FleetSync("/a/rns@robot-a", session=uuid.uuid4().hex)
    sync.attach(memory)                         # on start: what the memory holds is known
    ... a local teach changes `memory` ...
    update = sync.local_changes(memory)         # before saving: this robot's change, to publish
    receipt = sync.receive(update_from_b, memory)   # merges what another robot sent
    snapshot = sync.snapshot(memory)            # everything held, for robots that join late

The rules (docs/teaching.md, "Fleet"):
- Classes match by name (ids are local to each robot). Each add or removal of a class carries a
  last-writer-wins stamp (a Lamport clock, then the robot id): a robot applies a class state only
  when it is newer than the last one it knows for that name, so an old snapshot never brings back
  a class removed later, nor removes one added again later. A class this robot already holds keeps
  its own text feature and prompt.
- An exemplar is identified by its content hash (items.content_hash): receiving it twice changes
  nothing. A removal wins over every add of the same hash and is remembered (the ledger's
  tombstones, saved with the memory): no later message, snapshot or restart brings it back here.
  (A robot that teaches the very same content again holds it; the others keep it removed.)
- A robot publishes only its own changes (`local_changes` diffs the memory against what the fleet
  already knows from it, and what `receive` merged counts as known): nothing received is echoed.
  Its snapshot holds everything it holds, wherever it came from.
- Refused and counted, never merged: messages from another backbone (identity or feature size),
  from robots outside `accept_from` (when given), using this robot's id (a duplicate robot_id),
  malformed ones (items.check_update: wrong feature size, NaN, bad hashes, too large ...), a change
  that removes a class this robot never knew; exemplars of classes this robot does not hold are
  skipped and counted as refused, and so are classes whose new id this robot may not give
  (`class_id_allowed`, e.g. ids that must fit a byte). Exemplars whose hash this robot holds or removed already are
  skipped unread (a snapshot that brings nothing new costs a lookup per exemplar); everything else
  of a message is checked before any of it is merged.

Contract: every method runs under the caller's lock around the memory (the node's engine lock); a
refused message changes nothing; `receive` and `local_changes` leave `memory.ledger` describing the
memory, so the caller saves both atomically (through the same path as a local teach).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from rns_ros.core.fleet.items import (ClassState, FleetLimits, FleetUpdate, Malformed, SharedExemplar,
                                      check_size, check_update, content_hash)
from rns_ros.core.fleet.ledger import ClassStamp, FleetLedger
from rns_ros.core.memory.exemplars import Exemplar


@dataclass
class PeerRecord:
    """What this robot heard from one other robot."""

    robot_id: str
    session: str = ""
    last_sequence: int = 0  # of its latest change (or snapshot)
    last_seen: float = 0.0  # wall time of its latest message
    last_kind: str = ""  # "change" or "snapshot"
    messages: int = 0
    merged: int = 0  # items of its messages merged here
    refused: int = 0  # its messages (or items) refused here
    missed: int = 0  # change sequence numbers skipped (lost changes; its next snapshot heals them)


@dataclass
class Receipt:
    """What `receive` did with one message."""

    memory_changed: bool = False  # classes or exemplars changed (republish the class map)
    ledger_changed: bool = False  # only the ledger changed (save it)
    merged: int = 0  # classes added or removed, exemplars added or removed
    skipped: Counter = field(default_factory=Counter)  # held already, stale, removed before
    refused: list[str] = field(default_factory=list)  # why (the message, or some of its items)
    own: bool = False  # this robot's own message, heard back

    @property
    def save_needed(self) -> bool:
        return self.memory_changed or self.ledger_changed


class FleetSync:
    """One robot's side of the shared memory. See the module docstring for the rules.

    robot_id: unique in the fleet (the node's fleet.robot_id). session: new for each start.
    accept_from: robot ids whose messages are merged (empty = every robot). share_masks: send the
    exemplars' images and label maps, and keep the ones received. limits: what a message may hold.
    class_id_allowed: (id) -> whether a received class may be created under that new id.
    clock: wall time for the peers' last_seen.
    """

    def __init__(self, robot_id: str, session: str, *, accept_from: Sequence[str] = (),
                 share_masks: bool = False, limits: FleetLimits = FleetLimits(),
                 class_id_allowed: Callable[[int], bool] = lambda class_id: True,
                 clock: Callable[[], float] = time.time):
        if not isinstance(robot_id, str) or not robot_id.strip():
            raise ValueError(f"robot_id must be a non-empty string, got {robot_id!r}")
        self.robot_id = robot_id
        self.session = session
        self.accept_from = frozenset(accept_from)
        self.share_masks = share_masks
        self.limits = limits
        self.class_id_allowed = class_id_allowed
        self.clock = clock
        self.ledger = FleetLedger()
        self.sequence = 0  # of this robot's latest change message
        self.peers: dict[str, PeerRecord] = {}
        self.merged = 0
        self.refusals: Counter = Counter()  # reason kind -> count
        self.last_refusal = ""
        self.skips: Counter = Counter()
        self.duplicate_sessions: set[str] = set()  # other nodes using this robot_id
        self._memory = None
        self._known_classes: set[str] = set()  # named classes the fleet knows this robot holds
        self._known_exemplars: set[str] = set()  # content hashes the fleet knows this robot holds
        self._hash_cache: dict[int, tuple[tuple[int, ...], str]] = {}  # eid -> (class ids, hash)

    # ------------------------------------------------------------------ reading the memory
    def _names(self, memory) -> dict[int, str]:
        return {r.id: r.name for r in memory.classes if r.name is not None}

    def _held(self, memory) -> dict[str, list[int]]:
        """content hash -> exemplar ids holding it, for the exemplars whose classes all have names."""
        names = self._names(memory)
        held: dict[str, list[int]] = {}
        cache: dict[int, tuple[tuple[int, ...], str]] = {}
        for eid in memory.exemplar_ids:
            class_ids = tuple(memory.exemplar_class_ids(eid))
            if not all(c in names for c in class_ids):
                continue  # a nameless class cannot be matched on another robot: kept local
            cached = self._hash_cache.get(eid)
            if cached is None or cached[0] != class_ids:
                feats, _ = memory.exemplar_features(eid)
                cached = (class_ids, content_hash([names[c] for c in class_ids], feats.detach().cpu().numpy()))
            cache[eid] = cached
            held.setdefault(cached[1], []).append(eid)
        self._hash_cache = cache
        return held

    def _shared(self, memory, eid: int, names: dict[int, str]) -> SharedExemplar:
        feats, class_ids = memory.exemplar_features(eid)
        raw = {}
        exemplar = memory.exemplar(eid) if self.share_masks else None
        if exemplar is not None:
            present = [c for c in exemplar.class_ids() if c in names]
            lut = np.zeros(int(exemplar.labels.max()) + 1, dtype=np.uint16)
            lut[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
            raw = {"image": np.asarray(exemplar.image), "labels": lut[exemplar.labels],
                   "label_names": tuple(names[c] for c in present)}
        return SharedExemplar.of(tuple(names[c] for c in class_ids), feats.detach().cpu().numpy(),
                                 memory.exemplar_origin(eid) or self.robot_id, **raw)

    def _class_state(self, memory, cid: int, name: str) -> ClassState:
        record = memory.class_record(cid)
        text = memory.text_feature(cid)
        stamp = self.ledger.classes.get(name)
        if stamp is None or stamp.removed:  # a class the ledger does not track yet
            stamp = ClassStamp(*self.ledger.next_stamp(self.robot_id))
            self.ledger.classes[name] = stamp
        return ClassState(name, record.prompt or "", None if text is None else text.cpu().numpy(),
                          False, stamp.clock, stamp.robot)

    def _write_ledger(self, memory) -> None:
        memory.ledger = self.ledger.to_json()

    def _adopt(self, memory) -> None:
        """Take `memory` as the one to sync, merging the ledger saved with it into ours."""
        saved = FleetLedger.from_json(memory.ledger)
        self.ledger.witness(saved.clock)
        self.ledger.removed_exemplars |= saved.removed_exemplars
        for name, stamp in saved.classes.items():
            if self.ledger.is_newer(name, stamp.stamp):
                self.ledger.classes[name] = stamp
        self._memory = memory
        self._hash_cache = {}

    # ------------------------------------------------------------------ this robot's side
    def attach(self, memory) -> None:
        """Start syncing `memory` (on start, after it was restored): everything it holds counts as
        known to the fleet (the snapshot tells it), and classes without a stamp get one."""
        self._adopt(memory)
        names = self._names(memory)
        for cid, name in names.items():
            self._class_state(memory, cid, name)
        self._known_classes = set(names.values())
        self._known_exemplars = set(self._held(memory))
        self._write_ledger(memory)

    def local_changes(self, memory) -> FleetUpdate | None:
        """This robot's change since the last call (None if there is none), as the update to publish;
        removals become tombstones in the ledger, written to `memory.ledger`. Call it under the lock,
        after each local change and before saving. A replaced memory (a load) is diffed as well."""
        if memory is not self._memory:
            self._adopt(memory)
        names = self._names(memory)
        by_name = {name: cid for cid, name in names.items()}
        classes = []
        for name in sorted(set(by_name) - self._known_classes, key=by_name.get):  # in id order, as receivers add them
            stamp = ClassStamp(*self.ledger.next_stamp(self.robot_id))
            self.ledger.classes[name] = stamp
            classes.append(self._class_state(memory, by_name[name], name))
        for name in sorted(self._known_classes - set(by_name)):
            stamp = ClassStamp(*self.ledger.next_stamp(self.robot_id), removed=True)
            self.ledger.classes[name] = stamp
            classes.append(ClassState(name, removed=True, clock=stamp.clock, clock_robot=stamp.robot))
        held = self._held(memory)
        removed = sorted(self._known_exemplars - set(held))
        self.ledger.removed_exemplars.update(removed)
        added = [self._shared(memory, eids[0], names) for digest, eids in
                 sorted(held.items(), key=lambda item: item[1][0]) if digest not in self._known_exemplars]
        self._known_classes, self._known_exemplars = set(by_name), set(held)
        self._write_ledger(memory)
        if not (classes or added or removed):
            return None
        self.sequence += 1
        return self._update(memory, classes=tuple(classes), exemplars_added=tuple(added),
                            exemplars_removed=tuple(removed))

    def snapshot(self, memory) -> FleetUpdate:
        """Everything this robot holds (classes with their stamps, every shareable exemplar) and every
        removal it knows, for a robot that joins late or restarts."""
        if memory is not self._memory:
            self._adopt(memory)
        names = self._names(memory)
        classes = [self._class_state(memory, cid, name) for cid, name in sorted(names.items())]
        held_names = set(names.values())
        classes += [ClassState(name, removed=True, clock=s.clock, clock_robot=s.robot)
                    for name, s in sorted(self.ledger.classes.items()) if s.removed and name not in held_names]
        exemplars = [self._shared(memory, eids[0], names)
                     for eids in sorted(self._held(memory).values(), key=lambda e: e[0])]
        return self._update(memory, snapshot=True, classes=tuple(classes), exemplars_added=tuple(exemplars),
                            exemplars_removed=tuple(sorted(self.ledger.removed_exemplars)))

    def _update(self, memory, **items) -> FleetUpdate:
        return FleetUpdate(robot_id=self.robot_id, session=self.session, backbone=memory.backbone_identity or "",
                           dim=memory.dim, sequence=self.sequence, **items)

    # ------------------------------------------------------------------ the other robots' side
    def refuse(self, robot_id: str, kind: str, reason: str, receipt: Receipt | None = None) -> None:
        """Count a refusal of `robot_id`'s message (or item): `kind` groups it in the statistics."""
        self.refusals[kind] += 1
        self.last_refusal = f"{robot_id}: {reason}"
        if robot_id in self.peers:
            self.peers[robot_id].refused += 1
        if receipt is not None:
            receipt.refused.append(reason)

    def _peer(self, update: FleetUpdate) -> PeerRecord:
        peer = self.peers.setdefault(update.robot_id, PeerRecord(update.robot_id))
        if peer.session != update.session:  # a new peer, or a restart: its sequence starts again
            peer.session, peer.last_sequence = update.session, 0
        elif not update.snapshot and peer.last_sequence and update.sequence > peer.last_sequence + 1:
            peer.missed += update.sequence - peer.last_sequence - 1
        peer.last_sequence = max(peer.last_sequence, update.sequence)
        peer.last_seen = self.clock()
        peer.last_kind = "snapshot" if update.snapshot else "change"
        peer.messages += 1
        return peer

    def _news(self, update: FleetUpdate, memory, receipt: Receipt) -> FleetUpdate:
        """`update` without the exemplars this robot holds or removed already (counted as skipped):
        only new ones are checked in full and merged, so a snapshot that brings nothing new costs a
        set lookup per exemplar, not a hash of its features."""
        held = set(self._held(memory)) if update.exemplars_added else set()
        fresh = []
        for ex in update.exemplars_added:
            if ex.content_hash in self.ledger.removed_exemplars:
                receipt.skipped["exemplar removed before"] += 1
            elif ex.content_hash in held:
                receipt.skipped["exemplar held"] += 1
            else:
                fresh.append(ex)
        return replace(update, exemplars_added=tuple(fresh))

    def _refusal(self, update: FleetUpdate, news: FleetUpdate, memory) -> tuple[str, str] | None:
        """(kind, reason) when the whole message must be refused, else None. `news`: what of it is new."""
        if self.accept_from and update.robot_id not in self.accept_from:
            return ("not in accept_from", f"robot {update.robot_id!r} is not in fleet.accept_from")
        ours = memory.backbone_identity or ""
        if update.backbone != ours or update.dim != memory.dim:
            return ("other backbone", f"features of backbone {update.backbone!r} ({update.dim}-d), "
                    f"not this robot's {ours!r} ({memory.dim}-d)")
        try:
            check_size(update.nbytes, self.limits)
            check_update(news, dim=memory.dim, limits=self.limits)
        except Malformed as exc:
            return (exc.kind, str(exc))
        if not update.snapshot:
            held = set(self._names(memory).values())
            unknown = [c.name for c in update.classes
                       if c.removed and c.name not in held and c.name not in self.ledger.classes]
            if unknown:
                return ("unknown class", f"removes class(es) {unknown} that this robot never held")
        return None

    def receive(self, update: FleetUpdate, memory) -> Receipt:
        """Merge another robot's message into `memory` by the rules (module docstring)."""
        receipt = Receipt()
        if update.robot_id == self.robot_id and update.session == self.session:
            receipt.own = True  # our own publication, heard back: nothing to do
            return receipt
        if memory is not self._memory:
            self._adopt(memory)
        if update.robot_id == self.robot_id:  # not ours: another node was given this robot's id
            self.duplicate_sessions.add(update.session)
            self.refuse(update.robot_id, "duplicate robot_id", f"another node publishes as this robot's id "
                        f"{self.robot_id!r}; give each robot its own fleet.robot_id", receipt)
            return receipt
        peer = self._peer(update)
        news = self._news(update, memory, receipt)
        refusal = self._refusal(update, news, memory)
        if refusal is not None:
            receipt.skipped.clear()
            self.refuse(update.robot_id, *refusal, receipt)
            return receipt
        tombstones, stamps = len(self.ledger.removed_exemplars), dict(self.ledger.classes)
        self._apply_removals(news, memory, receipt)
        names = self._apply_classes(news, memory, receipt)
        self._apply_exemplars(news, memory, names, receipt)
        self._known_classes = set(names)
        self._known_exemplars = set(self._held(memory))
        self._write_ledger(memory)
        receipt.ledger_changed = (len(self.ledger.removed_exemplars) != tombstones or self.ledger.classes != stamps)
        peer.merged += receipt.merged
        self.merged += receipt.merged
        self.skips.update(receipt.skipped)
        return receipt

    def _apply_removals(self, update: FleetUpdate, memory, receipt: Receipt) -> None:
        held = self._held(memory) if update.exemplars_removed else {}
        for digest in update.exemplars_removed:
            self.ledger.removed_exemplars.add(digest)
            for eid in held.pop(digest, []):
                memory.remove_exemplar(eid)
                receipt.merged += 1
                receipt.memory_changed = True

    def _apply_classes(self, update: FleetUpdate, memory, receipt: Receipt) -> dict[str, int]:
        by_name = {name: cid for cid, name in self._names(memory).items()}
        for state in update.classes:
            self.ledger.witness(state.clock)
            creates = not state.removed and state.name not in by_name
            if creates and self.ledger.is_newer(state.name, state.stamp) and \
                    not self.class_id_allowed(memory.next_class_id):
                self.refuse(update.robot_id, "class id ceiling", f"class {state.name!r} would get id "
                            f"{memory.next_class_id}, above what this robot may give", receipt)
                continue
            if not self.ledger.is_newer(state.name, state.stamp):
                receipt.skipped["class held" if self.ledger.classes[state.name].stamp == state.stamp
                                else "class stale"] += 1
                continue
            self.ledger.classes[state.name] = ClassStamp(state.clock, state.clock_robot, state.removed)
            if state.removed and state.name in by_name:
                memory.remove_class(by_name.pop(state.name))
            elif not state.removed and state.name not in by_name:
                text = None if state.text is None else torch.from_numpy(np.array(state.text))
                by_name[state.name] = memory.add_class(state.name, text, prompt=state.description or None)
            else:
                continue  # the state is newer, but this robot holds the class as it says already
            receipt.merged += 1
            receipt.memory_changed = True
        return by_name

    def _apply_exemplars(self, update: FleetUpdate, memory, by_name: dict[str, int], receipt: Receipt) -> None:
        held = set(self._held(memory)) if update.exemplars_added else set()
        for ex in update.exemplars_added:
            if ex.content_hash in self.ledger.removed_exemplars:
                receipt.skipped["exemplar removed before"] += 1
                continue
            if ex.content_hash in held:
                receipt.skipped["exemplar held"] += 1
                continue
            missing = sorted(set(ex.class_names) - set(by_name))
            if missing:
                self.refuse(update.robot_id, "unknown class",
                            f"exemplar {ex.content_hash[:12]} of class(es) {missing} that this robot does not hold",
                            receipt)
                continue
            memory.add_image_features(torch.from_numpy(np.array(ex.features)), [by_name[n] for n in ex.class_names],
                                      exemplar=self._raw(ex, by_name),
                                      origin=None if ex.origin == self.robot_id else ex.origin)
            held.add(ex.content_hash)
            receipt.merged += 1
            receipt.memory_changed = True

    def _raw(self, ex: SharedExemplar, by_name: dict[str, int]) -> Exemplar | None:
        """The received image and label map in this robot's class ids (share_masks), or None.
        Pixels of classes this robot does not hold become 0 (not annotated)."""
        if not self.share_masks or ex.image is None:
            return None
        lut = np.zeros(len(ex.label_names) + 1, dtype=np.int64)
        lut[1:] = [by_name.get(name, 0) for name in ex.label_names]
        labels = lut[ex.labels.astype(np.int64)]
        return Exemplar(np.array(ex.image), labels) if labels.any() else None

    # ------------------------------------------------------------------ statistics
    def summary(self) -> dict[str, object]:
        """Key/values for /diagnostics: this robot, its peers, what was merged and refused and why."""
        now = self.clock()
        out: dict[str, object] = {"fleet_robot_id": self.robot_id, "fleet_sequence": self.sequence,
                                  "fleet_peers": len(self.peers), "fleet_items_merged": self.merged,
                                  "fleet_refused": sum(self.refusals.values()),
                                  "fleet_removed_exemplars": len(self.ledger.removed_exemplars)}
        for kind, count in sorted(self.refusals.items()):
            out[f"fleet_refused ({kind})"] = count
        if self.last_refusal:
            out["fleet_last_refusal"] = self.last_refusal
        for kind, count in sorted(self.skips.items()):
            out[f"fleet_skipped ({kind})"] = count
        if self.duplicate_sessions:
            out["fleet_duplicate_robot_id"] = (f"{len(self.duplicate_sessions)} other node(s) publish as "
                                               f"{self.robot_id!r}")
        for peer in sorted(list(self.peers.values()), key=lambda p: p.robot_id):
            out[f"fleet_peer {peer.robot_id}"] = (
                f"last {peer.last_kind} #{peer.last_sequence} {now - peer.last_seen:.1f} s ago; "
                f"{peer.messages} messages, {peer.merged} merged, {peer.refused} refused, {peer.missed} missed")
        return out
