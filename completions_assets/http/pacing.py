"""Clocks and the request pacer that keeps clients under a provider's rate limits.

The pacer is a thread-safe sliding-window limiter over several (count, seconds)
limits at once, shared by every walk of a client, so concurrent walks
together stay under the provider's documented limits instead of bumping into
them. It can also be paused, when a provider says it is out of budget.
"""

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None: ...


IN_FLIGHT_POLL_S = 0.005  # how often a request waiting behind one in flight looks again


class Stopped(Exception):
    """A wait was cut short because its fetch is being stopped (the step was terminated)."""


class SystemClock:
    """The real clock. A sleep ends at once when its `stop` event is set (then raises Stopped),
    so a step terminated while it waits on a rate limit or a retry ends promptly."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if stop is not None:
            if stop.wait(max(0.0, seconds)):
                raise Stopped("stopped while waiting")
        elif seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when slept on: retries and pacing cost no wall time.

    Used by tests and dry runs; `sleeps` records every requested sleep.
    """

    def __init__(self, *, start: float = 1_000.0, epoch: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = start
        self._epoch_offset = epoch - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now + self._epoch_offset

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if stop is not None and stop.is_set():
            raise Stopped("stopped while waiting")
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)


@dataclass(frozen=True)
class RateLimit:
    """At most `count` requests in any `seconds`-long window."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds <= 0:
            raise ValueError(f"invalid rate limit {self.count} per {self.seconds}s")


class Slot:
    """A granted request; `release` when its response is in, so the window counts from then."""

    def __init__(self, pacer: "Pacer", stamp: list[float], waited: float) -> None:
        self._pacer = pacer
        self._stamp = stamp
        self.waited = waited

    def release(self) -> None:
        self._pacer._release(self._stamp)


class Pacer:
    """Blocks each request until it fits under every limit.

    The provider counts arrivals, which fall somewhere between a request's
    send and its response. So a request in flight counts as arriving *now*
    (it may arrive any moment), and once its response is in, at its completion
    time: latency and its jitter never make two requests look closer together
    to the provider than the limits allow. Slots are taken right before a
    request goes out (see PacedAuth), never while waiting for anything else.

    Args:
        limits: the limits that must all hold; none means pacing is off.
        clock: time source and sleeper (injectable for tests).
        margin_s: added to every window, for clock granularity and jitter.
    """

    def __init__(self, limits: Sequence[RateLimit], *, clock: Clock, margin_s: float = 0.0) -> None:
        self.limits = tuple(limits)
        self._clock = clock
        self._margin = margin_s
        self._lock = threading.Lock()
        depth = max((limit.count for limit in self.limits), default=1)
        self._stamps: deque[list[float]] = deque(maxlen=depth)  # [time, in flight (1.0) or done (0.0)]
        self._paused_until = float("-inf")

    def acquire(self, stop: threading.Event | None = None) -> Slot:
        """Waits for a slot and takes it; `Slot.waited` is the seconds waited.

        Raises:
            Stopped: `stop` was set while waiting.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.monotonic()
                wait, behind_in_flight = self._wait_needed(now)
                if wait <= 0:
                    stamp = [now, 1.0]
                    if self.limits:
                        self._stamps.append(stamp)
                    return Slot(self, stamp, waited)
            if behind_in_flight:  # its completion time is unknown: look again soon
                wait = min(wait, IN_FLIGHT_POLL_S)
            self._clock.sleep(wait, stop)
            waited += wait

    def _release(self, stamp: list[float]) -> None:
        with self._lock:
            stamp[0], stamp[1] = max(stamp[0], self._clock.monotonic()), 0.0

    def _wait_needed(self, now: float) -> tuple[float, bool]:
        """Seconds until a request fits, and whether a request in flight is what it waits for."""
        wait, behind_in_flight = self._paused_until - now, False
        if not self.limits:
            return wait, False
        times = sorted((now if in_flight else at, bool(in_flight)) for at, in_flight in self._stamps)
        for limit in self.limits:
            if len(times) >= limit.count:
                oldest_in_window, in_flight = times[-limit.count]
                needed = oldest_in_window + limit.seconds + self._margin - now
                if needed > wait:
                    wait, behind_in_flight = needed, in_flight
        return wait, behind_in_flight

    def pause_for(self, seconds: float) -> None:
        """No request starts for `seconds` from now (all threads)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)

    def observe_budget(self, remaining: int, reset_epoch: float, *, cap_s: float) -> None:
        """Pauses until the provider's reset time when it reports no budget left."""
        if remaining > 0:
            return
        seconds = min(max(0.0, reset_epoch - self._clock.time()), cap_s)
        self.pause_for(seconds)
