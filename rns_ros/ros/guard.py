"""Callbacks that never end the process.

rclpy's executors re-raise an exception from a subscription, service or timer callback out of
`spin()`, which ends the node (and a service client waits forever for its answer). Every callback
the node registers is wrapped by `CallbackGuard.wrap`: an exception inside it is logged with its
traceback (at most once per second per callback), counted (`errors`, shown in /diagnostics), and
the callback returns its fallback (a service answers `success: false`). The node keeps serving.
"""
from __future__ import annotations

import functools
import threading
import time
import traceback
from typing import Callable


def failed_response(request, response, exc: BaseException):
    """A service's answer when its handler raised: success false with the error, when it has them."""
    fresh = type(response)()
    if hasattr(fresh, "success"):
        fresh.success = False
    if hasattr(fresh, "message"):
        fresh.message = f"internal error: {exc!r}"
    return fresh


class CallbackGuard:
    """Wraps callbacks; `errors` counts the exceptions caught, `last_error` names the latest."""

    def __init__(self, log_error: Callable[[str], None]):
        self.log_error = log_error
        self.errors = 0
        self.last_error = ""
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def record(self, name: str, exc: BaseException) -> None:
        """Count an exception of callback `name` and log it (throttled per callback)."""
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self.last_error = f"{name}: {exc!r}"
            log = now - self._last_logged.get(name, -1.0) >= 1.0
            if log:
                self._last_logged[name] = now
        if log:
            try:
                self.log_error(f"error in callback {name} (the node keeps running): "
                               f"{''.join(traceback.format_exception(exc)).rstrip()}")
            except Exception:  # noqa: BLE001 - a failing logger must not undo the guard
                pass

    def wrap(self, name: str, callback: Callable, fallback: Callable | None = None) -> Callable:
        """`callback` that records any exception and returns `fallback(*args, exc)` (or None) instead."""
        @functools.wraps(callback)
        def guarded(*args):
            try:
                return callback(*args)
            except Exception as exc:  # noqa: BLE001 - nothing inside a callback may end the process
                self.record(name, exc)
                return fallback(*args, exc) if fallback is not None else None
        return guarded
