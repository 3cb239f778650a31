"""The Python port of message_filters' ApproximateTime and ExactTime (message_filters_port.py)
gives upstream's own expected answers: every case of ros2/message_filters `jazzy`
test/test_approximate_time_policy.cpp (ApproxTimeSync.*), with its inputs and outputs copied."""
import pytest

from message_filters_port import ApproximateTime, ExactTime

S = 1_000_000_000  # rclcpp::Duration s(1, 0)


def run_approximate(inputs, topics, queue_size, bounds=None):
    out = []
    sync = ApproximateTime(topics, queue_size, lambda *msgs: out.append(tuple(msgs)))
    for topic, bound in (bounds or {}).items():
        sync.set_inter_message_lower_bound(topic, bound)
    for time_s, topic in inputs:
        sync.add(topic, int(time_s * S), time_s)  # the message is its stamp, in seconds
    return out


# name: (inputs [(stamp s, topic)], expected sets, topics, queue size, lower bounds {topic: ns})
UPSTREAM_CASES = {
    "ExactMatch": ([(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], [(0, 0), (3, 3), (6, 6)], 2, 10, None),
    "PerfectMatch": ([(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)], 2, 10, None),
    "ImperfectMatch": ([(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)], [(0, 1), (6, 5)], 2, 10, None),
    "Acceleration": ([(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)], [(12, 7), (17, 18)], 2, 10, None),
    "DroppedMessages, queue 1": ([(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
                                 [(4, 3), (10, 11)], 2, 1, None),
    "DroppedMessages, queue 2": ([(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0), (14, 1)],
                                 [(0, 1), (4, 3), (8, 7), (10, 11)], 2, 2, None),
    "LongQueue": ([(t, 0) for t in range(9)] + [(3, 1), (9, 0), (10, 0), (11, 0), (12, 0), (10, 1), (13, 0)],
                  [(10, 10)], 2, 5, None),
    "DoublePublish": ([(0, 0), (1, 1), (3, 1), (3, 0)], [(0, 1), (3, 3)], 2, 10, None),
    "FourTopics": ([(0, 0), (1, 1), (2, 2), (3, 3), (5, 0), (5, 3), (6, 1), (6, 2), (8, 0), (9, 1), (10, 2),
                    (11, 3), (10, 0), (13, 0), (14, 1)],
                   [(0, 1, 2, 3), (5, 6, 6, 5), (10, 9, 10, 11)], 4, 10, None),
    "EarlyPublish": ([(0, 0), (1, 1), (2, 2), (3, 3), (7, 0)], [(0, 1, 2, 3)], 4, 10, None),
    "RateBound 1.5": ([(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4)], 2, 10, {0: int(1.5 * S)}),
    "RateBound 2": ([(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], [(0, 1), (3, 4), (6, 7)], 2, 10, {0: 2 * S}),
}


@pytest.mark.parametrize("name", list(UPSTREAM_CASES))
def test_approximate_time_gives_upstreams_expected_sets(name):
    inputs, expected, topics, queue_size, bounds = UPSTREAM_CASES[name]
    assert run_approximate(inputs, topics, queue_size, bounds) == expected


def test_the_port_would_fail_a_wrong_expectation():
    """The harness can tell a wrong answer: ImperfectMatch does not pair b with B."""
    inputs, expected, topics, queue_size, _ = UPSTREAM_CASES["ImperfectMatch"]
    assert run_approximate(inputs, topics, queue_size) != [(0, 1), (3, 5)]


def test_max_interval_refuses_sets_wider_than_it():
    out = []
    sync = ApproximateTime(2, 10, lambda *m: out.append(m), max_interval_ns=S // 10)
    for stamp, topic in [(0.0, 0), (0.2, 1), (0.3, 0), (0.35, 1), (0.6, 0), (0.6, 1)]:
        sync.add(topic, int(stamp * S), stamp)
    assert out == [(0.3, 0.35), (0.6, 0.6)]  # 0.0 with 0.2 is 0.2 s wide: never a set


def test_exact_time_pairs_equal_stamps_only_and_forgets_older_incomplete_ones():
    out = []
    sync = ExactTime(3, 10, lambda *m: out.append(m))
    for stamp, topic in [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (3, 2), (3, 0), (3, 1)]:
        sync.add(topic, stamp * S, (stamp, topic))
    assert [tuple(m[0] for m in msgs) for msgs in out] == [(2, 2, 2), (3, 3, 3)]
    assert sync.dropped == [1 * S]  # stamp 1 never got its third message


def test_exact_time_keeps_at_most_queue_size_incomplete_stamps():
    sync = ExactTime(2, 3, lambda *m: None)
    for stamp in range(5):
        sync.add(0, stamp * S, stamp)
    assert sorted(sync.tuples) == [2 * S, 3 * S, 4 * S] and sync.dropped == [0, S]
