"""A one-slot mailbox between the subscription callback and the worker thread: newest wins.

The callback's `put` never waits for the worker (it only takes a lock held for a few
instructions); a frame the worker has not taken yet is replaced, and `put` says so, so that the
caller can count it as a stale drop. Frames are never queued.
"""
from __future__ import annotations

import threading
from typing import Any


class FrameMailbox:
    """Holds at most one item. `put` replaces, `take` waits (with a timeout) and empties."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._item: Any = None
        self._full = False
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store `item`; True when it replaced one that was never taken (a dropped frame)."""
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """The stored item (removing it), or None after `timeout` seconds or once closed."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def clear(self) -> bool:
        """Drop the stored item, if any; True when there was one."""
        with self._cond:
            had, self._item, self._full = self._full, None, False
            return had

    def close(self) -> None:
        """Wake every waiting `take` (it returns None unless an item is stored)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
