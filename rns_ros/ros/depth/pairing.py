"""Pairing two streams by header stamp (message_filters is not on PyPI; this is the small part of
its ApproximateTime policy that a colour + depth camera needs). Pure Python, no ROS.

Rule, live and offline alike: a colour frame pairs with the depth frame whose stamp is nearest to
its own, if that is at most `max_diff_ns` away; otherwise it has no partner (counted by the
caller, never guessed). Stamps are integer nanoseconds.

* `StampRing` (the live node): the last few depth frames; the worker asks for the nearest one
  when it takes a colour frame and again after segmenting it (a depth frame that arrived a little
  later than its colour frame is still found).
* `OrderedPairer` (rns-bag): every colour frame of a recording, in order; a colour frame is
  decided once no closer depth frame can come (a depth frame stamped past its window arrived),
  or `horizon_ns` of recording time later (a depth stream that stopped holds nothing back).
"""
from __future__ import annotations

import collections
import threading
from typing import Any


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _nearest(items, stamp: int, max_diff_ns: int):
    best = None
    for item_stamp, item in items:
        diff = abs(item_stamp - stamp)
        if diff <= max_diff_ns and (best is None or diff < best[1]):
            best = (item, diff)
    return best


class StampRing:
    """The last `capacity` items with their stamps (thread-safe); nearest-stamp lookup."""

    def __init__(self, capacity: int = 16):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._items: collections.deque[tuple[int, Any]] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, stamp: int, item: Any) -> None:
        with self._lock:
            self._items.append((int(stamp), item))

    def nearest(self, stamp: int, max_diff_ns: int) -> tuple[Any, int] | None:
        """(item, |stamp difference|) of the item nearest to `stamp` within `max_diff_ns`, or None.
        Ties go to the earlier-added item."""
        with self._lock:
            items = list(self._items)
        return _nearest(items, int(stamp), int(max_diff_ns))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class OrderedPairer:
    """Colour frames of a recording paired with depth frames, returned in the colour frames' order.

    Feed messages in recording order (`add_depth`, `add_colour`), call `ready(now)` with the
    recording time of the latest message to get the decided pairs, and `flush()` at the end.
    Depth stamps are assumed to rise. Memory stays bounded: `horizon_ns` of recording time of colour
    frames, and the last `keep_depth` depth frames (enough for a horizon of depth at 60 Hz).
    """

    def __init__(self, max_diff_ns: int, horizon_ns: int = 1_000_000_000, keep_depth: int = 64):
        self.max_diff_ns, self.horizon_ns = int(max_diff_ns), int(horizon_ns)
        self._depth: collections.deque[tuple[int, Any]] = collections.deque(maxlen=keep_depth)
        self._pending: collections.deque[tuple[int, int, Any]] = collections.deque()
        self._newest_depth: int | None = None

    def add_depth(self, stamp: int, item: Any) -> None:
        self._depth.append((int(stamp), item))
        self._newest_depth = int(stamp) if self._newest_depth is None else max(self._newest_depth, int(stamp))

    def add_colour(self, stamp: int, time_ns: int, item: Any) -> None:
        """A colour frame stamped `stamp`, recorded at `time_ns`."""
        self._pending.append((int(stamp), int(time_ns), item))

    def _decided(self, stamp: int, time_ns: int, now_ns: int) -> bool:
        no_closer_depth = self._newest_depth is not None and self._newest_depth > stamp + self.max_diff_ns
        return no_closer_depth or now_ns - time_ns > self.horizon_ns

    def ready(self, now_ns: int) -> list[tuple[Any, Any | None]]:
        """The pending colour frames that are decided, oldest first, each with its depth item or None."""
        out = []
        while self._pending and self._decided(self._pending[0][0], self._pending[0][1], now_ns):
            out.append(self._pop())
        return out

    def flush(self) -> list[tuple[Any, Any | None]]:
        """Every pending colour frame (the recording ended): pairs decided with what was seen."""
        out = []
        while self._pending:
            out.append(self._pop())
        return out

    def _pop(self) -> tuple[Any, Any | None]:
        stamp, _, item = self._pending.popleft()
        match = _nearest(self._depth, stamp, self.max_diff_ns)
        return item, (match[0] if match else None)

    @property
    def pending(self) -> int:
        return len(self._pending)
