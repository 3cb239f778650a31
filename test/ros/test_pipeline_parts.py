"""The node's ROS-free parts: statistics, device policy (colours/overlay: test/visual; the mailbox:
test_camera_mailboxes.py)."""
import threading
import time

import numpy as np
import pytest

from rns_ros.ros.engine import resolve_device
from rns_ros.ros.stats import PipelineStats


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


def test_camera_stats_also_count_in_their_parent():
    clock = FakeClock()
    total = PipelineStats(clock=clock)
    front, left = PipelineStats(clock=clock, parent=total), PipelineStats(clock=clock, parent=total)
    arrived = front.frame_arrived(replaced_unprocessed=False)
    front.frame_arrived(replaced_unprocessed=True)
    left.frame_arrived(replaced_unprocessed=False)
    clock.now += 0.2
    front.frame_processed(arrived, arrived)
    left.frame_invalid("bad frame: corrupt JPEG")
    left.callback_took(0.003)
    f, l, t = front.snapshot(), left.snapshot(), total.snapshot()
    assert (f.received, f.dropped_stale, f.processed, f.dropped_invalid) == (2, 1, 1, 0)
    assert (l.received, l.processed, l.dropped_invalid, l.last_drop_reason) == (1, 0, 1, "bad frame: corrupt JPEG")
    assert (t.received, t.dropped_stale, t.processed, t.dropped_invalid) == (3, 1, 1, 1)
    assert t.latency_median_s == pytest.approx(0.2) and t.callback_max_s == pytest.approx(0.003)
    assert f.callback_max_s == 0.0


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
