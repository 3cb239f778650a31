"""The node's ROS-free parts: mailbox, statistics, device policy (colours/overlay: test/visual)."""
import threading
import time

import numpy as np
import pytest

from rns_ros.ros.engine import resolve_device
from rns_ros.ros.mailbox import FrameMailbox
from rns_ros.ros.stats import PipelineStats


def test_mailbox_newest_wins_and_reports_replacements():
    box = FrameMailbox()
    assert box.put(1) is False
    assert box.put(2) is True  # 1 was never taken: a stale drop
    assert box.take(timeout=0) == 2
    assert box.take(timeout=0) is None
    assert box.put(3) is False


def test_mailbox_put_never_waits_for_a_slow_consumer():
    box = FrameMailbox()
    taken = []

    def slow_consumer():
        while len(taken) < 2:
            item = box.take(timeout=1)
            if item is not None:
                taken.append(item)
                time.sleep(0.2)  # "processing"

    t = threading.Thread(target=slow_consumer)
    t.start()
    durations = []
    for i in range(50):
        start = time.perf_counter()
        box.put(i)
        durations.append(time.perf_counter() - start)
        time.sleep(0.002)
    t.join()
    assert max(durations) < 0.05  # the consumer sleeps 200 ms per item; put never waited on it
    assert taken[-1] == 49 or box.take(timeout=0) == 49  # the newest frame is the one that survives


def test_mailbox_close_wakes_a_waiting_take():
    box = FrameMailbox()
    result = []
    t = threading.Thread(target=lambda: result.append(box.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    box.close()
    t.join()
    assert result == [None] and time.perf_counter() - start < 1.0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_stats_counts_rates_and_percentiles():
    clock = FakeClock()
    stats = PipelineStats(latency_window=100, rate_window_s=10.0, clock=clock)
    latencies = []
    for i in range(20):
        arrived = stats.frame_arrived(replaced_unprocessed=(i % 4 == 3))
        clock.now += 0.01 * (i + 1)  # latency grows: 10 ms, 20 ms, ...
        latencies.append(0.01 * (i + 1))
        stats.frame_processed(arrived, started_at=arrived)
        clock.now += 0.5 - 0.01 * (i + 1)  # one arrival every 0.5 s
    stats.frame_invalid("bad frame: unsupported encoding 'yuv422'")
    stats.frame_failed("engine error: boom")
    snap = stats.snapshot()
    assert (snap.received, snap.processed, snap.dropped_stale, snap.dropped_invalid, snap.failed) == (20, 20, 5, 1, 1)
    assert snap.last_drop_reason == "engine error: boom"
    assert snap.latency_median_s == pytest.approx(np.median(latencies))
    assert snap.latency_p95_s == pytest.approx(np.percentile(latencies, 95))
    assert snap.input_rate_hz == pytest.approx(2.0)  # arrivals 0.5 s apart
    assert snap.drop_reasons == {"bad frame": 1, "engine error": 1}


def test_stats_rate_window_forgets_old_arrivals():
    clock = FakeClock()
    stats = PipelineStats(rate_window_s=1.0, clock=clock)
    for _ in range(5):
        stats.frame_arrived(False)
        clock.now += 0.1
    clock.now += 5.0
    snap = stats.snapshot()
    assert snap.input_rate_hz == 0.0 and snap.seconds_since_input == pytest.approx(5.1)
    assert np.isnan(snap.latency_median_s)


@pytest.mark.parametrize("requested, fallback, count, expected, warns", [
    ("cpu", False, 0, "cpu", False),
    ("cuda", True, 0, "cpu", True),
    ("cuda:1", True, 0, "cpu", True),
    ("cuda", False, 2, "cuda", False),
    ("cuda:1", False, 2, "cuda:1", False),
])
def test_device_policy(requested, fallback, count, expected, warns):
    device, warning = resolve_device(requested, fallback, count)
    assert device == expected and (warning is not None) == warns
    if warns:
        assert "CUDA FALLBACK" in warning and "allow_cpu_fallback" in warning


@pytest.mark.parametrize("requested, fallback, count, match", [
    ("cuda", False, 0, "no CUDA device"),
    ("cuda:2", True, 2, "does not exist"),
    ("gpu", True, 1, "must be 'cuda'"),
])
def test_device_policy_refusals(requested, fallback, count, match):
    with pytest.raises((RuntimeError, ValueError), match=match):
        resolve_device(requested, fallback, count)
