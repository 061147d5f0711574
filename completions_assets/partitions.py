"""Daily partitions cut in the configured zone, and each day as a half-open UTC window (docs/contract.md, "Days")."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

from completions_assets.settings import Settings

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


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # end_offset=0: the newest partition is the last complete day.
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=0
    )


def windows_for(partitions_def: dg.PartitionsDefinition | None, keys: Sequence[str]) -> list[DayWindow]:
    """Each partition key's day as a half-open UTC window, in key order."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise TypeError(f"expected daily time-window partitions, got {partitions_def!r}")
    windows = []
    for key in keys:
        span = partitions_def.time_window_for_partition_key(key)
        windows.append(
            DayWindow(
                day=dt.date.fromisoformat(key),
                start=span.start.astimezone(dt.timezone.utc),
                end=span.end.astimezone(dt.timezone.utc),
            )
        )
    return windows
