"""Sliding-window request counting, one window set per key (token or user)."""

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int  # whole seconds until a refused request would pass (0 when allowed)
    limit: int  # of the first rule, for X-RateLimit-* headers
    remaining: int
    reset_epoch_s: int


class SlidingWindowLimiter:
    """Admits a request when every (window seconds, limit) rule has room.

    Refused requests are not counted, so a client that waits `Retry-After` passes.
    With `enforce=False` requests are only counted (headers stay truthful).
    """

    def __init__(self, rules: tuple[tuple[float, int], ...], clock: Callable[[], float] = time.monotonic) -> None:
        self._rules = rules
        self._clock = clock
        self._hits: dict[str, list[collections.deque[float]]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, enforce: bool = True) -> Decision:
        with self._lock:
            now = self._clock()
            queues = self._hits.setdefault(key, [collections.deque() for _ in self._rules])
            wait = 0.0
            for (window, limit), hits in zip(self._rules, queues, strict=True):
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= limit:
                    # The oldest of the last `limit` hits must leave the window first.
                    wait = max(wait, hits[len(hits) - limit] + window - now)
            allowed = wait <= 0 or not enforce
            if allowed:
                for hits in queues:
                    hits.append(now)
            return self._decision(queues[0], now, allowed, wait)

    def _decision(self, hits: collections.deque[float], now: float, allowed: bool, wait: float) -> Decision:
        window, limit = self._rules[0]
        reset_at = (hits[0] + window) if hits else now
        reset_epoch = math.ceil(time.time() + (reset_at - now))
        retry = 0 if allowed else max(1, math.ceil(wait))
        return Decision(allowed, retry, limit, max(0, limit - len(hits)), reset_epoch)
