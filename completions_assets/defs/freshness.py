"""Knowing that data is late: `freshness_check` on `lms_completions`, and the sensor that runs it.

It passes when the newest complete day has been merged by `COMPLETIONS_FRESHNESS_HOUR`
o'clock (in `COMPLETIONS_TIMEZONE`) on the day after it; from then on a missing day turns
it red in the UI ("overdue", severity WARN), whether the schedule did not run, a provider
was down all night, or a run failed. The sensor (on by default; it needs the daemon, as
`dg dev` runs it) runs it once after each deadline; it also runs with its asset, so the run
that merges a late day turns it green again, and a range run of old days records it
failed, since the newest day is then indeed missing.

The connections' assets carry none: a connection that lacks a day its run merged fails
`all_connections_present` (ERROR), naming it, and a day no run merged fails this check. A
check per connection would add three events per connection to every run and hundreds of
checks to the UI for nothing more.

Not Dagster's `FreshnessPolicy`: it judges the time of an asset's latest materialization,
of any partition, so a run that rewrote older days would make `lms_completions` look fresh
while its newest day is missing. This check asks whether that day's partition was
materialized, with the instance's public records API.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from completions_assets.keys import LMS
from completions_assets.settings import Settings

CHECK_NAME = "freshness_check"
SENSOR_NAME = "completions_freshness_sensor"
FRESHNESS = dg.AssetCheckKey(LMS, CHECK_NAME)


class FreshnessConfig(dg.Config):
    """Run config of the freshness check (Launchpad: `ops: {lms_completions_freshness_check: {config: …}}`)."""

    as_of: str = Field(
        default="",
        description="Judge freshness as of this time (ISO 8601; without an offset, in COMPLETIONS_TIMEZONE). "
        "Default: now.",
    )


def due_day(as_of: dt.datetime, settings: Settings) -> dt.date | None:
    """The newest day that must be merged by `as_of`: the day before the latest deadline
    (`COMPLETIONS_FRESHNESS_HOUR` o'clock in `COMPLETIONS_TIMEZONE`) at or before it; None while
    no day since `COMPLETIONS_START_DATE` is due yet."""
    assert settings.freshness_hour is not None
    local = as_of.astimezone(settings.zone)
    deadline = local.date() if local.hour >= settings.freshness_hour else local.date() - dt.timedelta(days=1)
    day = deadline - dt.timedelta(days=1)
    return day if day >= settings.start_date else None


def build_freshness_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The check of `lms_completions`; none when `COMPLETIONS_FRESHNESS_HOUR=off`."""
    if settings.freshness_hour is None:
        return []

    @dg.asset_check(
        asset=LMS,
        name=CHECK_NAME,
        description=f"The newest complete day is merged by {settings.freshness_hour}:00 ({settings.timezone}) "
        "on the day after it (COMPLETIONS_FRESHNESS_HOUR).",
    )
    def freshness_check(context: dg.AssetCheckExecutionContext, config: FreshnessConfig) -> dg.AssetCheckResult:
        as_of = dt.datetime.fromisoformat(config.as_of) if config.as_of else dt.datetime.now(dt.timezone.utc)
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=settings.zone)
        day = due_day(as_of, settings)
        metadata: dict[str, str | None] = {"as_of": as_of.isoformat(), "due_day": day.isoformat() if day else None}
        passed = True
        if day is not None:
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=LMS, asset_partitions=[day.isoformat()]), limit=1
            ).records
            passed = bool(records)
            if records:
                metadata["merged_at"] = dt.datetime.fromtimestamp(records[0].timestamp, dt.timezone.utc).isoformat()
        return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)

    return [freshness_check]


def build_freshness_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The sensor that runs the check once after each deadline; none when the check is off."""
    if settings.freshness_hour is None:
        return []

    @dg.sensor(
        name=SENSOR_NAME,
        target=dg.AssetSelection.checks(FRESHNESS),
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs lms_completions' freshness_check once after each COMPLETIONS_FRESHNESS_HOUR deadline.",
    )
    def completions_freshness_sensor(context: dg.SensorEvaluationContext):
        day = due_day(dt.datetime.now(dt.timezone.utc), settings)
        if day is None:
            return dg.SkipReason("no day since COMPLETIONS_START_DATE is due yet")
        # One run per deadline (its run key); after it, the check runs again with every merge.
        return dg.RunRequest(run_key=f"freshness-{day.isoformat()}", asset_check_keys=[FRESHNESS])

    return [completions_freshness_sensor]
