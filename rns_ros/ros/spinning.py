"""Spinning an executor in a thread and stopping it in the one order that is safe.

Order (docs/ros2-on-pip.md): executor.shutdown(), join the spin thread, wait for callbacks still
running, then destroy nodes, then try_shutdown. The waiting step works around rclpy 7.1.6:
`Executor.shutdown()` sets its shutdown flag *before* testing it, so it never waits for the
callbacks that a MultiThreadedExecutor's thread pool is still running; destroying a node under
such a callback makes it raise (\"cannot use Destroyable because destruction was requested\").
"""
from __future__ import annotations

import threading


def spin_in_thread(executor) -> threading.Thread:
    """Start `executor.spin()` in a daemon thread (errors during shutdown races end it quietly)."""

    def spin():
        try:
            executor.spin()
        except Exception:  # the executor or context was shut down under it
            pass

    thread = threading.Thread(target=spin, name="rclpy-spin", daemon=True)
    thread.start()
    return thread


def stop_executor(executor, thread: threading.Thread | None = None, timeout: float = 10.0) -> None:
    """Shut the executor down, join its spin thread and wait for callbacks still in flight."""
    executor.shutdown(timeout_sec=timeout)
    if thread is not None and thread.is_alive():
        thread.join(timeout)
    pool = getattr(executor, "_executor", None)  # MultiThreadedExecutor's ThreadPoolExecutor
    if pool is not None:
        pool.shutdown(wait=True)
