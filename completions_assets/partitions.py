"""Daily partitions cut in the configured zone, and each day as a half-open UTC window (docs/contract.md, "Days")."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from completions_assets.days import UTC, DayWindow, day_window, day_windows
from completions_assets.settings import Settings

__all__ = ["UTC", "DayWindow", "day_window", "day_windows", "daily_partitions", "windows_for"]


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
