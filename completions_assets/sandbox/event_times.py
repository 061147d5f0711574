"""When records happen and when they become visible: shared by both providers."""

import datetime as dt
import random

from .timeutil import DAY_MS, MINUTE_MS

_EMPTY_PERIOD = 9  # about one empty day in nine, at least one in any nine in a row
_MAX_LAG_MS = 5 * MINUTE_MS  # an on-time record shows up within minutes


def day_rng(seed: int, provider: str, day: dt.date) -> random.Random:
    # Seeded per calendar day: a day's records do not depend on start_date or days.
    return random.Random(f"{seed}:{provider}:{day.isoformat()}")


def is_empty_day(seed: int, provider: str, day: dt.date) -> bool:
    offset = random.Random(f"{seed}:{provider}:empty").randrange(_EMPTY_PERIOD)
    return (day.toordinal() + offset) % _EMPTY_PERIOD == 0


def day_events(rng: random.Random, day_start: int, count: int) -> list[int]:
    """`count` event times (epoch ms) in the day, boundaries first.

    Every non-empty day has records at exactly 00:00:00.000 (two of them, a
    tie), at 23:59:59.999 and somewhere else in the last minute.
    """
    last_minute = day_start + DAY_MS - MINUTE_MS
    specials = [day_start, day_start + DAY_MS - 1, last_minute + rng.randrange(MINUTE_MS - 1), day_start]
    events = specials[:count]
    events += [day_start + rng.randrange(DAY_MS) for _ in range(count - len(events))]
    events.sort()
    return events


def visible_from(rng: random.Random, event_ms: int, late_fraction: float) -> int:
    """Epoch ms from which a record is served: late ones 1..3 days after the event."""
    if rng.random() < late_fraction:
        return event_ms + rng.randint(DAY_MS, 3 * DAY_MS)
    return event_ms + rng.randrange(_MAX_LAG_MS)


def uuid7(ms: int, rng: random.Random) -> str:
    """UUIDv7 whose 48-bit timestamp is `ms`, so string order is time order."""
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
