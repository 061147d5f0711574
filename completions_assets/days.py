"""A partition day as a half-open UTC interval (docs/contract.md, "Days"); no Dagster here, so the
provider clients that fetch days can use it."""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


@dataclass(frozen=True)
class DayWindow:
    """Partition day `day` owns event times `start <= t < end` (both UTC)."""

    day: dt.date
    start: dt.datetime
    end: dt.datetime


def day_window(day: dt.date, tz: ZoneInfo) -> DayWindow:
    # Local midnights converted to UTC: a DST day is 23 or 25 hours long.
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(UTC)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(UTC)
    return DayWindow(day=day, start=start, end=end)


def day_windows(first: dt.date, last: dt.date, tz: ZoneInfo) -> list[DayWindow]:
    """Windows of every day from `first` to `last`, both included."""
    count = (last - first).days + 1
    return [day_window(first + dt.timedelta(days=i), tz) for i in range(count)]
