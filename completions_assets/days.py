"""A partition day as a half-open UTC interval (docs/contract.md, "Days"); no Dagster here, so the
provider clients that fetch days can use it."""

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


@dataclass(frozen=True)
class PartitionDay:
    """The partition of calendar day `date`: it owns event times `start <= t < end` (both UTC)."""

    date: dt.date
    start: dt.datetime
    end: dt.datetime


def partition_day(date: dt.date, tz: ZoneInfo) -> PartitionDay:
    # Local midnights converted to UTC: a DST day is 23 or 25 hours long.
    start = dt.datetime.combine(date, dt.time(), tzinfo=tz).astimezone(UTC)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(UTC)
    return PartitionDay(date=date, start=start, end=end)


def partition_days(first: dt.date, last: dt.date, tz: ZoneInfo) -> list[PartitionDay]:
    """Every day from `first` to `last`, both included."""
    count = (last - first).days + 1
    return [partition_day(first + dt.timedelta(days=i), tz) for i in range(count)]
