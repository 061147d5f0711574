"""The job over every asset, the daily schedule with its lookback, and the sensor that re-merges
days a partly failed run left behind."""

import datetime as dt

import dagster as dg

from completions_assets.settings import Settings

# A few minutes after midnight, so the day has closed in the partition zone.
DAILY_CRON = "5 0 * * *"
JOB_NAME = "completions_job"


def build_job():  # an asset job, resolved when the Definitions load (its type is not exported)
    return dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.groups("lms"),
        description="Fetch both providers, merge and check, for one day or a range.",
    )


def lookback_range(closed_day: dt.date, settings: Settings) -> tuple[dt.date, dt.date] | None:
    """Days one tick refreshes: the day that closed and the lookback before it."""
    if closed_day < settings.start_date:
        return None
    first = max(closed_day - dt.timedelta(days=settings.lookback_days), settings.start_date)
    return first, closed_day


def build_schedule(settings: Settings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="completions_daily_schedule",
        cron_schedule=DAILY_CRON,
        execution_timezone=settings.timezone,
        job_name=JOB_NAME,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def completions_daily_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.astimezone(settings.zone)
        days = lookback_range(tick.date() - dt.timedelta(days=1), settings)
        if days is None:
            return dg.SkipReason("the day that closed is before COMPLETIONS_START_DATE")
        first, last = (day.isoformat() for day in days)
        # One run for the whole range: late records reach lms_completions too.
        return dg.RunRequest(
            run_key=f"{first}...{last}",
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )

    return completions_daily_schedule


def build_rebuild_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates `lms_completions`' automation condition (needs the daemon, as `dg dev` runs it)."""
    return dg.AutomationConditionSensorDefinition(
        "lms_completions_rebuild_sensor",
        target=dg.AssetSelection.assets("lms_completions"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Merges again the days whose connection files changed in a run whose merge was skipped.",
    )
