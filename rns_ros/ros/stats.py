"""Thread-safe counters and timing windows of the frame pipeline (no ROS imports).

The subscription callback records arrivals and stale drops; the worker records processed frames,
invalid frames and failures. `snapshot()` gives a consistent copy for /diagnostics and the demo.
With several cameras each camera has its own `PipelineStats` whose `parent` (the node's) records
every event too, so the node's figures are the totals.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    """Pipeline statistics at one moment. Times in seconds, rates in Hz."""

    received: int  # frames that reached the subscription callback
    processed: int  # frames segmented and published
    dropped_stale: int  # replaced in the mailbox by a newer frame before the worker took them
    dropped_invalid: int  # refused by the decoder or the size limit
    failed: int  # the engine raised while segmenting them
    last_drop_reason: str  # why the latest invalid/failed frame was dropped ('' = none yet)
    input_rate_hz: float  # arrivals per second over the rate window
    output_rate_hz: float  # published frames per second over the rate window
    latency_median_s: float  # arrival -> published, NaN until a frame was processed
    latency_p95_s: float
    processing_median_s: float  # decode + segment + publish only (no mailbox wait)
    processing_p95_s: float
    seconds_since_input: float  # since the latest arrival; inf before the first one
    callback_max_s: float  # longest time the subscription callback took (it must never block)
    drop_reasons: dict = field(default_factory=dict)  # reason kind -> count


def _rate(stamps) -> float:
    """Events per second between the first and last stamp of the window (0 with fewer than two)."""
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


class PipelineStats:
    """Counters plus sliding windows: the last `latency_window` latencies, arrivals in `rate_window_s`."""

    def __init__(self, latency_window: int = 200, rate_window_s: float = 5.0, clock=time.monotonic,
                 parent: PipelineStats | None = None):
        if latency_window < 1 or rate_window_s <= 0:
            raise ValueError("latency_window must be >= 1 and rate_window_s > 0")
        self._clock = clock
        self.parent = parent  # also records every event (the node's totals), or None
        self._lock = threading.Lock()
        self._rate_window_s = rate_window_s
        self._arrivals: collections.deque[float] = collections.deque()
        self._publishes: collections.deque[float] = collections.deque()
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._processing: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._counts = collections.Counter()
        self._drop_reasons = collections.Counter()
        self._last_drop_reason = ""
        self._last_arrival = None
        self._callback_max_s = 0.0

    def _trim(self, stamps: collections.deque, now: float) -> None:
        while stamps and stamps[0] < now - self._rate_window_s:
            stamps.popleft()

    def frame_arrived(self, replaced_unprocessed: bool) -> float:
        """Record an arrival (and a stale drop if it displaced an unprocessed frame); returns its time."""
        now = self._clock()
        with self._lock:
            self._counts["received"] += 1
            if replaced_unprocessed:
                self._counts["dropped_stale"] += 1
            self._arrivals.append(now)
            self._trim(self._arrivals, now)
            self._last_arrival = now
        if self.parent is not None:
            self.parent.frame_arrived(replaced_unprocessed)
        return now

    def callback_took(self, seconds: float) -> None:
        with self._lock:
            self._callback_max_s = max(self._callback_max_s, seconds)
        if self.parent is not None:
            self.parent.callback_took(seconds)

    def frame_processed(self, arrived_at: float, started_at: float) -> None:
        now = self._clock()
        with self._lock:
            self._counts["processed"] += 1
            self._latencies.append(now - arrived_at)
            self._processing.append(now - started_at)
            self._publishes.append(now)
            self._trim(self._publishes, now)
        if self.parent is not None:
            self.parent.frame_processed(arrived_at, started_at)

    def frame_invalid(self, reason: str) -> None:
        self._drop("dropped_invalid", reason)

    def frame_failed(self, reason: str) -> None:
        self._drop("failed", reason)

    def _drop(self, counter: str, reason: str) -> None:
        with self._lock:
            self._counts[counter] += 1
            self._drop_reasons[reason.split(":")[0][:60]] += 1
            self._last_drop_reason = reason
        if self.parent is not None:
            self.parent._drop(counter, reason)

    def snapshot(self) -> StatsSnapshot:
        now = self._clock()
        with self._lock:
            self._trim(self._arrivals, now)
            self._trim(self._publishes, now)
            latencies, processing = list(self._latencies), list(self._processing)
            return StatsSnapshot(
                received=self._counts["received"], processed=self._counts["processed"],
                dropped_stale=self._counts["dropped_stale"], dropped_invalid=self._counts["dropped_invalid"],
                failed=self._counts["failed"], last_drop_reason=self._last_drop_reason,
                input_rate_hz=_rate(self._arrivals), output_rate_hz=_rate(self._publishes),
                latency_median_s=_percentile(latencies, 50), latency_p95_s=_percentile(latencies, 95),
                processing_median_s=_percentile(processing, 50), processing_p95_s=_percentile(processing, 95),
                seconds_since_input=float("inf") if self._last_arrival is None else now - self._last_arrival,
                callback_max_s=self._callback_max_s,
                drop_reasons=dict(self._drop_reasons))
