"""message_filters' two synchronisation policies, ported line by line to Python for tests.

Nav2's semantic costmap layer pairs the label image, the confidence image and the point cloud with
one of these (semantic_segmentation_layer, `jazzy`: src/semantic_segmentation_layer.cpp,
SemanticSegmentationLayer::onInitialize), so a test that says "the layer takes our messages" has to
run them as the layer does. message_filters is not on PyPI; this is its code, from ros2/message_filters
branch `jazzy` (4.11.2, commit d3eecd6):

* `ApproximateTime`: include/message_filters/sync_policies/approximate_time.h, class ApproximateTime
  (add, process, makeCandidate, publishCandidate, recover*, getCandidateBoundary,
  getVirtualTime / getVirtualCandidateBoundary). Jazzy 4.11.6 added `.hpp` headers that include these
  (ros2/message_filters#170), which is what the layer's `#include "...approximate_time.hpp"` gets.
* `ExactTime`: include/message_filters/sync_policies/exact_time.h, class ExactTime (add, checkTuple,
  clearOldTuples), used by message_filters::TimeSynchronizer.

Stamps are integer nanoseconds, as rclcpp::Time holds them; a message is any object, passed with
its stamp. `callback(*messages)` is called for each set the policy emits, in the order it emits them.
The only thing left out is checkInterMessageBound, which only logs warnings.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

INFINITE_NS = (2**31 - 1) * 1_000_000_000 + 999_999_999  # rclcpp::Duration(INT32_MAX, 999999999)


class ApproximateTime:
    """message_filters::sync_policies::ApproximateTime for `topics` inputs (queue_size per topic)."""

    def __init__(self, topics: int, queue_size: int, callback: Callable[..., None], *,
                 max_interval_ns: int = INFINITE_NS, age_penalty: float = 0.1):
        if queue_size <= 0:
            raise ValueError("queue_size must be > 0 (RCUTILS_ASSERT in the constructor)")
        self.n, self.queue_size, self.callback = topics, queue_size, callback
        self.max_interval_ns, self.age_penalty = max_interval_ns, age_penalty
        self.deques: list[collections.deque] = [collections.deque() for _ in range(topics)]
        self.past: list[list] = [[] for _ in range(topics)]
        self.num_non_empty = 0
        self.pivot: int | None = None  # NO_PIVOT
        self.pivot_time = 0
        self.candidate: list | None = None
        self.candidate_start = self.candidate_end = 0
        self.has_dropped = [False] * topics
        self.lower_bounds = [0] * topics

    def set_inter_message_lower_bound(self, i: int, bound_ns: int) -> None:
        self.lower_bounds[i] = bound_ns

    def _scaled(self, duration_ns: int) -> int:
        return int(duration_ns * (1 + self.age_penalty))  # rclcpp::Duration * double truncates

    # ---------------------------------------------------------------- add
    def add(self, i: int, stamp_ns: int, msg: Any) -> None:
        deque = self.deques[i]
        deque.append((stamp_ns, msg))
        if len(deque) == 1:
            self.num_non_empty += 1
            if self.num_non_empty == self.n:
                self._process()
        if len(deque) + len(self.past[i]) > self.queue_size:
            self.num_non_empty = 0  # cancel the candidate search: recomputed by recover
            for j in range(self.n):
                self._recover_all(j)
            deque.popleft()  # drop the oldest message of the offending topic
            self.has_dropped[i] = True
            if self.pivot is not None:
                self.candidate, self.pivot = None, None
                self._process()

    # ---------------------------------------------------------------- deque moves
    def _delete_front(self, i: int) -> None:
        self.deques[i].popleft()
        if not self.deques[i]:
            self.num_non_empty -= 1

    def _move_front_to_past(self, i: int) -> None:
        self.past[i].append(self.deques[i].popleft())
        if not self.deques[i]:
            self.num_non_empty -= 1

    def _recover(self, i: int, count: int) -> None:
        for _ in range(count):
            self.deques[i].appendleft(self.past[i].pop())
        if self.deques[i]:
            self.num_non_empty += 1

    def _recover_all(self, i: int) -> None:
        self._recover(i, len(self.past[i]))

    def _recover_and_delete(self, i: int) -> None:
        while self.past[i]:
            self.deques[i].appendleft(self.past[i].pop())
        self.deques[i].popleft()
        if self.deques[i]:
            self.num_non_empty += 1

    def _make_candidate(self) -> None:
        self.candidate = [q[0] for q in self.deques]
        for past in self.past:
            past.clear()

    def _publish_candidate(self) -> None:
        messages = [msg for _, msg in self.candidate]
        self.candidate, self.pivot = None, None
        self.num_non_empty = 0
        for i in range(self.n):
            self._recover_and_delete(i)
        self.callback(*messages)

    # ---------------------------------------------------------------- boundaries
    def _boundary(self, times: list[int], end: bool) -> tuple[int, int]:
        index, time = 0, times[0]
        for i in range(1, self.n):
            if (times[i] < time) ^ end:  # end: the latest head (ties: the later topic)
                index, time = i, times[i]
        return index, time

    def _virtual_time(self, i: int) -> int:
        if not self.deques[i]:
            bound = self.past[i][-1][0] + self.lower_bounds[i]
            return bound if bound > self.pivot_time else self.pivot_time
        return self.deques[i][0][0]

    # ---------------------------------------------------------------- process
    def _process(self) -> None:  # noqa: C901 - kept in the shape of the C++ it mirrors
        while self.num_non_empty == self.n:
            heads = [q[0][0] for q in self.deques]
            end_index, end_time = self._boundary(heads, True)
            start_index, start_time = self._boundary(heads, False)
            for i in range(self.n):
                if i != end_index:
                    self.has_dropped[i] = False
            if self.pivot is None:
                if end_time - start_time > self.max_interval_ns:
                    self._delete_front(start_index)  # too big to be a candidate
                    continue
                if self.has_dropped[end_index]:
                    self._delete_front(start_index)  # the would-be pivot dropped messages
                    continue
                self._make_candidate()
                self.candidate_start, self.candidate_end = start_time, end_time
                self.pivot, self.pivot_time = end_index, end_time
                self._move_front_to_past(start_index)
            else:
                if self._scaled(end_time - self.candidate_end) >= start_time - self.candidate_start:
                    self._move_front_to_past(start_index)  # not better
                else:
                    self._make_candidate()
                    self.candidate_start, self.candidate_end = start_time, end_time
                    self._move_front_to_past(start_index)
            if start_index == self.pivot:
                self._publish_candidate()  # every candidate for this pivot was seen
            elif self._scaled(end_time - self.candidate_end) >= self.pivot_time - self.candidate_start:
                self._publish_candidate()  # already provably optimal
            elif self.num_non_empty < self.n:
                self._virtual_search()

    def _virtual_search(self) -> None:
        before = self.num_non_empty
        moves = [0] * self.n
        while True:
            times = [self._virtual_time(i) for i in range(self.n)]
            _, end_time = self._boundary(times, True)
            start_index, start_time = self._boundary(times, False)
            if self._scaled(end_time - self.candidate_end) >= self.pivot_time - self.candidate_start:
                self._publish_candidate()  # optimality proved
                return
            if self._scaled(end_time - self.candidate_end) < start_time - self.candidate_start:
                self.num_non_empty = 0  # cannot prove it: undo the virtual moves
                for i in range(self.n):
                    self._recover(i, moves[i])
                assert self.num_non_empty == before
                return
            assert start_index != self.pivot and start_time < self.pivot_time
            self._move_front_to_past(start_index)
            moves[start_index] += 1


class ExactTime:
    """message_filters::sync_policies::ExactTime (TimeSynchronizer): a set is emitted when every
    topic has a message of the same stamp; older incomplete sets are then dropped, and at most
    `queue_size` incomplete stamps are kept (the oldest dropped first)."""

    def __init__(self, topics: int, queue_size: int, callback: Callable[..., None]):
        self.n, self.queue_size, self.callback = topics, queue_size, callback
        self.tuples: dict[int, list] = {}
        self.last_signal_time: int | None = None
        self.dropped: list[int] = []  # stamps of the incomplete sets dropped (the drop signal)

    def add(self, i: int, stamp_ns: int, msg: Any) -> None:
        entry = self.tuples.setdefault(stamp_ns, [None] * self.n)
        entry[i] = msg
        if all(m is not None for m in entry):
            self.last_signal_time = stamp_ns
            del self.tuples[stamp_ns]
            for old in sorted(self.tuples):  # clearOldTuples
                if old > stamp_ns:
                    break
                self.dropped.append(old)
                del self.tuples[old]
            self.callback(*entry)
        if self.queue_size > 0:
            while len(self.tuples) > self.queue_size:
                oldest = min(self.tuples)
                self.dropped.append(oldest)
                del self.tuples[oldest]
