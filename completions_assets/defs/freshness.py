"""Knowing that data is late: a partition-aware freshness check on `lms_completions`.

It passes when the newest complete day has been merged by
`COMPLETIONS_FRESHNESS_HOUR` o'clock (in `COMPLETIONS_TIMEZONE`) on the day after
it; from then on a missing day turns it red in the UI ("overdue"), whether the
schedule did not run, a provider was down all night, or a run failed. A sensor
(on by default; it needs the daemon, as `dg dev` runs it) evaluates them.
It also runs with its asset: a range run of old days records it failed (WARN),
since the newest day is then indeed missing.

The connections' assets carry none: a connection that lacks a day its run merged
fails `all_connections_present` (ERROR), naming it, and a day no run merged fails
this check. A check per connection would add three events per connection to every
run and hundreds of checks to the UI for nothing more.
"""

from collections.abc import Sequence

import dagster as dg

from completions_assets.settings import Settings

SENSOR_NAME = "completions_freshness_sensor"


def build_freshness_checks(merged: dg.AssetsDefinition, settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The check of `lms_completions` (`merged`); none when `COMPLETIONS_FRESHNESS_HOUR=off`."""
    if settings.freshness_hour is None:
        return []
    return list(
        dg.build_time_partition_freshness_checks(
            assets=[merged],
            deadline_cron=f"0 {settings.freshness_hour} * * *",
            timezone=settings.timezone,
            severity=dg.AssetCheckSeverity.WARN,
        )
    )


def build_freshness_sensors(checks: Sequence[dg.AssetChecksDefinition]) -> list[dg.SensorDefinition]:
    if not checks:
        return []
    return [
        dg.build_sensor_for_freshness_checks(
            freshness_checks=list(checks),
            name=SENSOR_NAME,
            minimum_interval_seconds=300,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    ]
