"""What a robot must remember about the fleet's shared memory beyond the memory itself: which
exemplars were removed (for good), and the last-writer-wins stamp of every class name.

    ledger = FleetLedger.from_json(memory.ledger)     # {} (a memory without one) = empty
    stamp = ledger.next_stamp("/a/rns@robot-a")       # (clock, robot) of a change made here
    ledger.classes["mug"] = ClassStamp(*stamp, removed=True)
    memory.ledger = ledger.to_json()                  # saved atomically with the memory

The ledger lives in `SupportMemory.ledger` (a JSON dict), so it is written in the same manifest as
the change it records (rns_ros.core.memory.persistence, format 2): a crash can never keep a removal
without its tombstone. Stamps are Lamport clocks: every stamp made here is larger than every stamp
seen so far, and (clock, robot) pairs order every change of the fleet the same way on every robot.
`from_json` is lenient: a malformed ledger (hand-edited, truncated) gives what can be read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

_MAX_CLOCK = 2**63 - 1


@dataclass(frozen=True)
class ClassStamp:
    """The latest change of one class name the robot knows: when (clock, robot) and what (removed)."""

    clock: int
    robot: str
    removed: bool = False

    @property
    def stamp(self) -> tuple[int, str]:
        return (self.clock, self.robot)


@dataclass
class FleetLedger:
    clock: int = 0  # the largest clock made or seen
    classes: dict[str, ClassStamp] = field(default_factory=dict)  # class name -> latest change
    removed_exemplars: set[str] = field(default_factory=set)  # content hashes removed anywhere

    def next_stamp(self, robot_id: str) -> tuple[int, str]:
        """The stamp of a change made here now: larger than every stamp made or seen before."""
        self.clock = min(self.clock + 1, _MAX_CLOCK)
        return (self.clock, robot_id)

    def witness(self, clock: int) -> None:
        """Remember a clock seen in a message (the next local stamp is larger)."""
        self.clock = max(self.clock, min(int(clock), _MAX_CLOCK))

    def is_newer(self, name: str, stamp: tuple[int, str]) -> bool:
        """True when `stamp` is later than the last change of class `name` known here (or none is)."""
        known = self.classes.get(name)
        return known is None or stamp > known.stamp

    def to_json(self) -> dict:
        return {"clock": self.clock,
                "classes": {name: [s.clock, s.robot, s.removed] for name, s in sorted(self.classes.items())},
                "removed_exemplars": sorted(self.removed_exemplars)}

    @classmethod
    def from_json(cls, data) -> "FleetLedger":
        ledger = cls()
        if not isinstance(data, dict):
            return ledger
        clock = data.get("clock")
        if isinstance(clock, int) and clock >= 0:
            ledger.witness(clock)
        classes = data.get("classes")
        for name, entry in (classes.items() if isinstance(classes, dict) else ()):
            if (isinstance(name, str) and isinstance(entry, list) and len(entry) == 3
                    and isinstance(entry[0], int) and isinstance(entry[1], str) and isinstance(entry[2], bool)):
                ledger.classes[name] = ClassStamp(entry[0], entry[1], entry[2])
                ledger.witness(entry[0])
        removed = data.get("removed_exemplars")
        ledger.removed_exemplars = {h for h in (removed if isinstance(removed, list) else ()) if isinstance(h, str)}
        return ledger
