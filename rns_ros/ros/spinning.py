"""Spinning an executor in a thread and stopping it in the one order that is safe; stopping a node
process as a ROS 2 user does (`stop_process`).

Order (docs/ros2-on-pip.md): executor.shutdown(), join the spin thread, then destroy nodes, then
try_shutdown. Two extra waits work around rclpy 7.1.6: `Executor.shutdown()` sets its shutdown
flag *before* testing it, so it never waits for callbacks that a MultiThreadedExecutor's thread
pool is still running, and it destroys the guard condition those callbacks signal when they end
("cannot use Destroyable because destruction was requested" printed at exit). So: remove the
nodes first, wait for the callbacks in flight, then shut down and wait for the pool.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time


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
    """Stop scheduling the nodes' callbacks, let running ones finish, then shut the executor down,
    join its spin thread and wait for its thread pool."""
    for node in list(executor.get_nodes()):
        executor.remove_node(node)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(t.done() for t in list(getattr(executor, "_futures", []))):
        time.sleep(0.005)
    executor.shutdown(timeout_sec=timeout)
    if thread is not None and thread.is_alive():
        thread.join(timeout)
    pool = getattr(executor, "_executor", None)  # MultiThreadedExecutor's ThreadPoolExecutor
    if pool is not None:
        pool.shutdown(wait=True)


def stop_process(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGINT (what Ctrl-C sends), up to `timeout` s for it to end, then SIGTERM, then SIGKILL;
    returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
