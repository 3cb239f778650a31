"""Seconds per pipeline stage without stalling the GPU (issue 27, item 12).

    clock = StageClock(device)
    ...features...;  clock.lap("features")
    ...adapter...;   clock.lap("adapter")
    labels.cpu()                      # a copy to the host: everything before it has run
    timings = clock.seconds()         # {"features": s, "adapter": s}

On a CPU a lap reads the wall clock. On CUDA a lap records an event on the device's current
stream and returns at once: nothing synchronises between stages, and `seconds()` reads the events'
elapsed times once the work before the last lap is done (it waits for that event, which a copy to
the host before it has already made complete). A stage's time is then the time between the GPU
reaching its two events: the GPU's time where the GPU is the bottleneck, the host's where the host
feeds it too slowly, so the stages still add up to the frame.
"""
from __future__ import annotations

import time

import torch


class StageClock:
    """Laps on `device`'s clock: wall-clock on a CPU, CUDA events on a GPU (no synchronisation)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._laps: list[tuple[str | None, object]] = [(None, self._mark())]

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def lap(self, stage: str) -> None:
        """The time since the previous lap belongs to `stage`."""
        self._laps.append((stage, self._mark()))

    def seconds(self, into: dict[str, float] | None = None) -> dict[str, float]:
        """Seconds per stage (summed over laps of the same name), added into `into` if given. On
        CUDA this waits for the last lap's event (no wait after a copy to the host)."""
        totals = {} if into is None else into
        if self.cuda:
            self._laps[-1][1].synchronize()
        for (_, start), (stage, end) in zip(self._laps, self._laps[1:]):
            elapsed = start.elapsed_time(end) / 1e3 if self.cuda else end - start
            totals[stage] = totals.get(stage, 0.0) + elapsed
        return totals
