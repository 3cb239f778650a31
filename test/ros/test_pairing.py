"""Pairing colour and depth frames by stamp: nearest within the tolerance, never guessed."""
import pytest
from std_msgs.msg import Header

from rns_ros.ros.depth.pairing import OrderedPairer, StampRing, stamp_ns

MS = 1_000_000


def test_stamp_in_nanoseconds():
    header = Header()
    header.stamp.sec, header.stamp.nanosec = 3, 5
    assert stamp_ns(header) == 3_000_000_005


def test_ring_finds_the_nearest_within_the_tolerance_only():
    ring = StampRing(capacity=3)
    for t in (100, 133, 166, 200):  # ms; 100 falls out of the ring
        ring.add(t * MS, f"d{t}")
    assert ring.nearest(140 * MS, 50 * MS) == ("d133", 7 * MS)
    assert ring.nearest(183 * MS, 50 * MS) == ("d166", 17 * MS)  # tie 17/17: the earlier one
    assert ring.nearest(100 * MS, 50 * MS) == ("d133", 33 * MS)  # d100 is gone
    assert ring.nearest(100 * MS, 20 * MS) is None
    assert ring.nearest(251 * MS, 50 * MS) is None
    assert ring.nearest(250 * MS, 50 * MS) == ("d200", 50 * MS)  # the bound is inclusive
    assert len(ring) == 3
    ring.clear()
    assert ring.nearest(200 * MS, 50 * MS) is None
    with pytest.raises(ValueError):
        StampRing(0)


def test_ordered_pairer_waits_for_a_depth_frame_recorded_after_its_colour_frame():
    pairer = OrderedPairer(max_diff_ns=20 * MS)
    pairer.add_depth(67 * MS, "d67")
    pairer.add_colour(100 * MS, 100 * MS, "c100")  # its depth partner is recorded 5 ms later
    assert pairer.ready(100 * MS) == []
    pairer.add_depth(101 * MS, "d101")
    assert pairer.ready(105 * MS) == []  # a closer one could still come
    pairer.add_depth(134 * MS, "d134")
    assert pairer.ready(134 * MS) == [("c100", "d101")]
    assert pairer.pending == 0


def test_ordered_pairer_keeps_colour_order_and_lets_a_stopped_depth_stream_go():
    pairer = OrderedPairer(max_diff_ns=20 * MS, horizon_ns=500 * MS)
    pairer.add_depth(0, "d0")
    pairer.add_colour(0, 0, "c0")
    pairer.add_colour(100 * MS, 100 * MS, "c100")
    pairer.add_depth(100 * MS, "d100")
    assert pairer.ready(100 * MS) == [("c0", "d0")]  # depth at 100 ms is past c0's window
    for t in (200, 300, 400):  # the depth stream stopped
        pairer.add_colour(t * MS, t * MS, f"c{t}")
    assert pairer.ready(400 * MS) == []
    assert pairer.ready(750 * MS) == [("c100", "d100"), ("c200", None)]  # 500 ms horizon passed for these
    assert pairer.flush() == [("c300", None), ("c400", None)]
    assert pairer.flush() == []


def test_ordered_pairer_without_any_depth_decides_by_horizon():
    pairer = OrderedPairer(max_diff_ns=50 * MS, horizon_ns=1000 * MS)
    pairer.add_colour(0, 0, "c0")
    assert pairer.ready(999 * MS) == [] and pairer.ready(1001 * MS) == [("c0", None)]
