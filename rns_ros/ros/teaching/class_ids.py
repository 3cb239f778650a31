"""A ceiling on class ids, enforced when classes are taught (`Teacher` asks before every change
that creates classes).

With depth.aligned_outputs the node publishes class ids as one byte (mono8, what Nav2's semantic
costmap layer reads), so a class that would get an id above 255 is refused with the reason, and
nothing changes. Ids are never reused (a removed class's id stays used), so the ceiling bounds the
number of classes ever created in a memory, not the number alive.

    limit = ClassIdLimit(lambda: (255, "depth.aligned_outputs publishes class ids as one byte"))
    limit.check_new(engine, 3)          # Refused if the next 3 ids would pass 255
    limit.check_existing([12, 300])     # Refused: a loaded memory holds id 300
"""
from __future__ import annotations

from typing import Callable, Iterable

from rns_ros.ros.teaching.requests import Refused

Ceiling = tuple[int, str]  # (largest id allowed, why)


class ClassIdLimit:
    """ceiling: () -> (largest id allowed, why) or None (no ceiling); read at every check, so it
    follows the node's parameters. `refusals` counts the refused changes (shown in /diagnostics)."""

    def __init__(self, ceiling: Callable[[], Ceiling | None] = lambda: None):
        self._ceiling = ceiling
        self.refusals = 0

    def check_new(self, engine, count: int) -> None:
        """Refused unless `count` new classes, which get ids engine.next_class_id() onwards, fit."""
        ceiling = self._ceiling()
        if ceiling is None or count <= 0:
            return
        last = engine.next_class_id() + count - 1
        if last > ceiling[0]:
            self._refuse(f"the new class{'es' if count > 1 else ''} would get id {last}", ceiling)

    def check_existing(self, class_ids: Iterable[int]) -> None:
        """Refused when any of these ids (of a memory about to be loaded) is above the ceiling."""
        ceiling = self._ceiling()
        top = max(class_ids, default=0)
        if ceiling is not None and top > ceiling[0]:
            self._refuse(f"that memory holds class id {top}", ceiling)

    @property
    def active(self) -> bool:
        """Whether there is a ceiling now."""
        return self._ceiling() is not None

    def over(self, class_ids: Iterable[int]) -> list[int]:
        """The ids above the ceiling (none without one)."""
        ceiling = self._ceiling()
        return [] if ceiling is None else sorted(i for i in class_ids if i > ceiling[0])

    def restored_problem(self, class_ids: Iterable[int]) -> str | None:
        """What to log when a memory restored on configure (taught before the ceiling was on) holds
        ids above it; None when it does not."""
        over = self.over(class_ids)
        if not over:
            return None
        ceiling = self._ceiling()
        return (f"the support memory holds class ids {over[:8]} above {ceiling[0]} ({ceiling[1]}): frames labelled "
                "with them get no aligned outputs (aligned_invalid in /diagnostics); remove those classes or "
                "renumber the memory (docs/ros.md)")

    def _refuse(self, what: str, ceiling: Ceiling) -> None:
        self.refusals += 1
        raise Refused(f"{what}, above {ceiling[0]}: {ceiling[1]}. Class ids are never reused (removing a class "
                      "frees no id); docs/ros.md, 'Class ids that fit a byte', says how to renumber a memory")
