"""A fake engine for node tests: instant (or deliberately slow/failing), independent of torch.

Its segmentation is simple enough to recompute independently in a test: a pixel belongs to the
class at position argmax(R, G, B) of the class list (the first three classes), or to none (0)
when its brightest channel is below 128. Confidence = brightest channel / 255.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from rns_ros.ros.engine import ClassEntry, EngineResult, validate_new_class_names


def expected_labels(rgb: np.ndarray, class_ids: list[int]) -> np.ndarray:
    """The fake's labels, computed from the image independently of the node."""
    ids = np.array(list(class_ids[:3]) + [0] * (3 - len(class_ids[:3])), dtype=np.int32)
    out = ids[np.argmax(rgb, axis=2)]
    out[rgb.max(axis=2) < 128] = 0
    return out


class HandOverLock:
    """An RLock that can hand itself over once: after `hand_over(done)`, the worker thread's last
    release of it waits (10 s at most) for `done`, so a critical section that was waiting for the
    lock runs to its end before the worker goes on. That is the schedule in which issue 25 lost a
    frame: a teaching change that waited for a frame lands the moment the frame lets the lock go.
    Works as the engine's lock (`with lock:`, acquire/release, re-entrant)."""

    def __init__(self, thread_name: str = "rns-worker"):
        self._lock = threading.RLock()
        self._depth = threading.local()
        self._thread_name = thread_name
        self._pending: threading.Event | None = None

    def hand_over(self, done: threading.Event) -> None:
        self._pending = done

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._depth.n = getattr(self._depth, "n", 0) + 1
        return got

    def release(self) -> None:
        self._depth.n -= 1
        self._lock.release()
        done = self._pending
        if done is not None and self._depth.n == 0 and threading.current_thread().name == self._thread_name:
            self._pending = None
            done.wait(10)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class FakeEngine:
    def __init__(self, config=None, *, delay_s: float = 0.0, fail=None, first_id: int = 1,
                 device: str = "cpu", device_warning: str | None = None, adapter_warning: str | None = None,
                 runtime_warning: str | None = None, gate: threading.Event | None = None,
                 started_file: str | None = None):
        self.config = config
        self.delay_s = delay_s  # a slow engine (workload; tests wait on `entered` or `gate`, not on time)
        self.gate = gate  # when given, every frame waits (30 s at most) until it is set
        self.entered = threading.Event()  # set when a frame is inside segment()
        self.started_file = started_file  # a line is appended there when a frame enters (other processes)
        self.fail = fail  # callable(rgb) -> bool: raise on such frames
        self.device = device
        self.device_warning = device_warning
        self.profile_note = None
        self.adapter_execution = "fake adapter"
        self.adapter_warning = adapter_warning
        self.runtime_note = runtime_warning or "image encoder: fake"
        self.runtime_warning = runtime_warning
        self.backbone_identity = "fake/engine"
        self.lock = threading.RLock()
        self._classes: dict[int, ClassEntry] = {}
        self._next_id = first_id
        self._version = 0
        self.segmented: list[np.ndarray] = []  # every frame it was given, in order
        self.closed = False
        self.adapter_configs = []
        self.batches: list[int] = []  # sizes of the segment_batch calls

    def segment(self, rgb):
        with self.lock:
            if self.fail is not None and self.fail(rgb):
                raise RuntimeError("fake engine failure")
            self.entered.set()
            if self.started_file:
                with open(self.started_file, "a") as marks:
                    marks.write("frame\n")
            if self.gate is not None:
                self.gate.wait(30)
            if self.delay_s:
                time.sleep(self.delay_s)
            self.segmented.append(rgb.copy())
            labels = expected_labels(rgb, sorted(self._classes))
            return EngineResult(labels, rgb.max(axis=2).astype(np.float32) / 255.0, self._version, {})

    def segment_batch(self, rgbs):
        """Several cameras' frames at once (recorded in `batches`), each segmented as alone."""
        with self.lock:
            self.batches.append(len(rgbs))
            return [self.segment(rgb) for rgb in rgbs]

    def add_classes(self, names, descriptions=()):
        with self.lock:
            names = validate_new_class_names(names, descriptions, [c.name for c in self._classes.values()])
            ids = []
            for i, name in enumerate(names):
                cid = self._next_id
                self._next_id += 1
                desc = descriptions[i] if descriptions else ""
                self._classes[cid] = ClassEntry(cid, name, desc, True, ())
                ids.append(cid)
            self._version += 1
            return ids

    def remove_class(self, name: str) -> None:
        with self.lock:
            cid = next(c.id for c in self._classes.values() if c.name == name)
            del self._classes[cid]
            self._version += 1

    def classes(self):
        with self.lock:
            return [self._classes[c] for c in sorted(self._classes)]

    def support_version(self):
        return self._version

    def next_class_id(self):
        return self._next_id

    def num_exemplars(self):
        return 0

    def memory_usage_mb(self):
        return {"process_peak_rss_mb": 1.0}

    def set_adapter_config(self, config):
        self.adapter_configs.append(config)

    def close(self):
        self.closed = True
