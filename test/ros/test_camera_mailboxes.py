"""The several-camera mailbox (rns_ros/ros/inputs/mailboxes.py): newest frame per camera, fair service."""
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rns_ros.ros.inputs.mailboxes import CameraMailboxes


def test_newest_frame_per_camera_wins_and_replacements_are_reported():
    boxes = CameraMailboxes(["front", "left"])
    assert boxes.put("front", 1) is False
    assert boxes.put("left", "L1") is False
    assert boxes.put("front", 2) is True  # frame 1 was never taken: a stale drop
    assert boxes.waiting() == ["front", "left"]
    assert boxes.take(max_frames=2) == [("front", 2), ("left", "L1")]
    assert boxes.waiting() == [] and boxes.take(timeout=0.01) == []


def test_cameras_that_always_have_a_frame_are_served_round_robin():
    boxes = CameraMailboxes(["a", "b", "c"])
    order = []
    for step in range(9):
        for camera in ("c", "b", "a"):  # put order does not matter
            boxes.put(camera, step)
        order.append(boxes.take()[0][0])
    assert order == ["a", "b", "c"] * 3


def test_batches_hold_distinct_cameras_least_recently_served_first():
    boxes = CameraMailboxes(["a", "b", "c"])
    for camera in "abc":
        boxes.put(camera, camera)
    assert [c for c, _ in boxes.take(max_frames=2)] == ["a", "b"]
    for camera in "ab":
        boxes.put(camera, camera)
    assert [c for c, _ in boxes.take(max_frames=2)] == ["c", "a"]  # c waited longest, then a (served before b)
    assert [c for c, _ in boxes.take(max_frames=5)] == ["b"]


def test_a_fast_camera_does_not_starve_a_slow_one_and_a_silent_one_blocks_nothing():
    """Simulated ticks: 'fast' publishes every tick, 'slow' every 4th, 'quiet' only at the start;
    the worker segments one frame per tick."""
    boxes = CameraMailboxes(["fast", "slow", "quiet"])
    published = {"fast": 0, "slow": 0, "quiet": 0}
    served = {"fast": [], "slow": [], "quiet": []}
    for tick in range(200):
        for camera, period in (("fast", 1), ("slow", 4)):
            if tick % period == 0:
                boxes.put(camera, tick)
                published[camera] += 1
        if tick < 3:
            boxes.put("quiet", tick)
            published["quiet"] += 1
        for camera, item in boxes.take(timeout=0):
            served[camera].append(item)
    assert served["slow"] == list(range(0, 200, 4))  # every slow frame, none dropped
    assert served["quiet"] == [2]  # its newest frame, then silence: the others went on
    assert len(served["fast"]) >= 200 - len(served["slow"]) - 1  # every remaining turn


def test_put_never_waits_for_a_slow_worker():
    """The worker holds a frame and does not come back until the test lets it: every put still
    returns (a put that waited for the worker would never end)."""
    boxes = CameraMailboxes(["only"])
    taken, busy, release = [], threading.Event(), threading.Event()

    def slow_worker():
        while len(taken) < 2:
            for _, item in boxes.take(timeout=10):
                taken.append(item)
                busy.set()
                release.wait(30)  # "processing", until the puts are done

    worker = threading.Thread(target=slow_worker)
    worker.start()
    boxes.put("only", -1)
    assert busy.wait(10)  # the worker holds frame -1 now
    putter = threading.Thread(target=lambda: [boxes.put("only", i) for i in range(50)])
    putter.start()
    putter.join(30)
    assert not putter.is_alive() and taken == [-1]  # all 50 puts done while the worker was busy
    release.set()
    worker.join(30)
    assert taken == [-1, 49]  # then the newest frame, the others replaced


def test_timeout_and_close_wake_a_waiting_worker():
    boxes = CameraMailboxes(["only"])
    started = time.monotonic()
    assert boxes.take(timeout=0.05) == []
    assert time.monotonic() - started >= 0.04
    result = []
    worker = threading.Thread(target=lambda: result.append(boxes.take(timeout=10)))
    worker.start()
    time.sleep(0.05)
    boxes.close()
    worker.join(2)
    assert not worker.is_alive() and result == [[]]
    boxes.put("only", 1)
    assert boxes.take(timeout=10) == [("only", 1)]  # a waiting frame is still handed out after close
    boxes.reopen()
    boxes.put("only", 2)
    assert boxes.clear() == 1 and boxes.take(timeout=0) == []


def test_threads_publishing_at_different_rates_are_all_served():
    boxes = CameraMailboxes(["c0", "c1", "c2"])
    stop = threading.Event()

    def camera(name, period):
        i = 0
        while not stop.is_set():
            boxes.put(name, (name, i))
            i += 1
            time.sleep(period)

    producers = [threading.Thread(target=camera, args=(f"c{i}", p)) for i, p in enumerate((0.001, 0.01, 0.03))]
    for t in producers:
        t.start()
    served = {"c0": [], "c1": [], "c2": []}
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for camera, (name, index) in boxes.take(timeout=0.1):
            assert camera == name  # a frame is never handed out under another camera's name
            served[camera].append(index)
            time.sleep(0.005)  # the "engine"
    stop.set()
    for t in producers:
        t.join()
    assert all(len(v) >= 5 for v in served.values()), {k: len(v) for k, v in served.items()}
    assert all(v == sorted(v) for v in served.values())  # each camera's frames in order


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="distinct"):
        CameraMailboxes(["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        CameraMailboxes([])
    boxes = CameraMailboxes(["a"])
    with pytest.raises(KeyError, match="unknown camera 'b'"):
        boxes.put("b", 1)
    with pytest.raises(ValueError, match="max_frames"):
        boxes.take(max_frames=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("put"), st.integers(0, 3)),
                          st.tuples(st.just("take"), st.integers(1, 4))), max_size=80))
def test_any_interleaving_serves_newest_frames_within_one_round(ops):
    """Newest frame per camera, distinct cameras per take, and a waiting camera is served within
    (cameras - 1) takes that do not include it."""
    cameras = ["a", "b", "c", "d"]
    boxes = CameraMailboxes(cameras)
    newest, waiting_since = {}, {}
    skipped = dict.fromkeys(cameras, 0)
    for serial, (op, arg) in enumerate(ops):
        if op == "put":
            camera = cameras[arg]
            boxes.put(camera, serial)
            newest[camera] = serial
            waiting_since.setdefault(camera, serial)
            continue
        taken = boxes.take(max_frames=arg, timeout=0)
        names = [c for c, _ in taken]
        assert len(names) == len(set(names)) <= arg
        assert len(names) == min(arg, len(waiting_since))
        for camera, item in taken:
            assert item == newest.pop(camera)
            del waiting_since[camera]
            skipped[camera] = 0
        for camera in waiting_since:
            skipped[camera] += 1
            assert skipped[camera] <= len(cameras) - 1
