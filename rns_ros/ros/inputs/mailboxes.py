"""Several cameras, one worker: the newest frame of each camera, served fairly (no ROS imports).

Each camera has a one-slot mailbox (newest wins, as for the single camera: a frame that the worker
has not taken yet is replaced, and `put` says so, so that it can be counted as a stale drop).
`take` waits until some camera has a frame and returns the frames of up to `max_frames` cameras,
the cameras that were served longest ago first. So every camera with a waiting frame is served
within one round of the others, however fast they publish (a 30 Hz camera cannot starve a 1 Hz
one), and a camera that stops publishing simply has nothing waiting: it never blocks the others.
The callback's `put` only takes a lock held for a few instructions.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Hashable, Sequence


class CameraMailboxes:
    """One newest-wins slot per camera; `take` serves the least recently served cameras first."""

    def __init__(self, cameras: Sequence[Hashable]):
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be a non-empty list of distinct names, got {list(cameras)}")
        self.cameras = tuple(cameras)
        self._cond = threading.Condition(threading.Lock())
        self._slots: dict[Hashable, Any] = {}  # camera -> its waiting item (absent = nothing waiting)
        self._served_at = {camera: i - len(self.cameras) for i, camera in enumerate(self.cameras)}  # first round: list order
        self._ticket = itertools.count()
        self._closed = False

    def put(self, camera: Hashable, item: Any) -> bool:
        """Store the camera's newest `item`; True when it replaced one never taken (a stale drop)."""
        if camera not in self._served_at:
            raise KeyError(f"unknown camera {camera!r}; cameras: {list(self.cameras)}")
        with self._cond:
            replaced = camera in self._slots
            self._slots[camera] = item
            self._cond.notify()
            return replaced

    def take(self, max_frames: int = 1, timeout: float | None = None) -> list[tuple[Hashable, Any]]:
        """Up to `max_frames` (camera, item) pairs, one per camera, least recently served first,
        removed from their slots; [] after `timeout` seconds without any frame, or once closed."""
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        with self._cond:
            if not self._slots and not self._closed:
                self._cond.wait(timeout)
            if not self._slots:
                return []
            chosen = sorted(self._slots, key=self._served_at.__getitem__)[:max_frames]
            taken = [(camera, self._slots.pop(camera)) for camera in chosen]
            for camera in chosen:
                self._served_at[camera] = next(self._ticket)
            return taken

    def waiting(self) -> list[Hashable]:
        """Cameras that have a frame waiting (for diagnostics and tests)."""
        with self._cond:
            return [c for c in self.cameras if c in self._slots]

    def clear(self) -> int:
        """Drop every waiting frame; returns how many there were."""
        with self._cond:
            count = len(self._slots)
            self._slots.clear()
            return count

    def close(self) -> None:
        """Wake every waiting `take` (it returns [] unless a frame is waiting)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
