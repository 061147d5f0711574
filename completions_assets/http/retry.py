"""When to retry: exponential backoff with jitter, or what a `Retry-After` header asks for.

The settings are the provider resource's own fields (`RetrySettings` names the
ones read here), so each is declared once.
"""

import datetime as dt
import email.utils
import random
from typing import Protocol

JITTER = 0.25  # the fraction of a backoff delay shaved off at random


class RetrySettings(Protocol):
    @property
    def max_attempts(self) -> int: ...

    @property
    def backoff_initial_s(self) -> float: ...

    @property
    def backoff_max_s(self) -> float: ...

    @property
    def retry_after_cap_s(self) -> float: ...


def retry_delay(settings: RetrySettings, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry `retry_number` (1-based): what `Retry-After` asks (the
    caller refuses waits above `retry_after_cap_s`), else the jittered backoff."""
    if retry_after is not None:
        return min(max(0.0, retry_after), settings.retry_after_cap_s)
    base = min(settings.backoff_max_s, settings.backoff_initial_s * 2 ** (retry_number - 1))
    return base * (1 - JITTER * rng.random())


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = when.timestamp() - now_epoch
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
