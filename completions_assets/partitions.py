"""Daily partitions cut in the configured zone, and each day as a half-open UTC interval (docs/contract.md, "Days")."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from completions_assets.days import UTC, PartitionDay, partition_day, partition_days
from completions_assets.settings import Settings

__all__ = ["UTC", "PartitionDay", "partition_day", "partition_days", "daily_partitions", "days_for"]


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # end_offset=0: the newest partition is the last complete day.
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=0
    )


def days_for(partitions_def: dg.PartitionsDefinition | None, keys: Sequence[str]) -> list[PartitionDay]:
    """Each partition key's day as a half-open UTC interval, in key order."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise TypeError(f"expected daily time-window partitions, got {partitions_def!r}")
    days = []
    for key in keys:
        span = partitions_def.time_window_for_partition_key(key)
        days.append(
            PartitionDay(
                date=dt.date.fromisoformat(key),
                start=span.start.astimezone(dt.timezone.utc),
                end=span.end.astimezone(dt.timezone.utc),
            )
        )
    return days
