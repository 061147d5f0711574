import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from completions_assets.defs.schedules import build_schedule
from completions_assets.settings import Settings

pytestmark = pytest.mark.unit


def run_range(settings: Settings, tick: dt.datetime) -> tuple[str, str] | None:
    schedule = build_schedule(settings)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    requests = schedule.evaluate_tick(context).run_requests or []
    assert len(requests) <= 1
    if not requests:
        return None
    range_ = requests[0].partition_key_range
    assert range_ is not None
    return range_.start, range_.end


def settings(zone: str, lookback: int = 3, start: dt.date = dt.date(2024, 1, 1)) -> Settings:
    return Settings(start_date=start, timezone=zone, lookback_days=lookback, data_root="./data")


@pytest.mark.parametrize(
    ("zone", "tick", "expected"),
    [
        ("UTC", dt.datetime(2025, 3, 10, 0, 5, tzinfo=ZoneInfo("UTC")), ("2025-03-06", "2025-03-09")),
        # Midnight in New York is 04:05 or 05:05 UTC: the closed day is still the 9th.
        ("America/New_York", dt.datetime(2025, 3, 10, 4, 5, tzinfo=ZoneInfo("UTC")), ("2025-03-06", "2025-03-09")),
        # 2025-03-09 is the spring-forward day (23 hours) in New York.
        ("America/New_York", dt.datetime(2025, 3, 9, 5, 5, tzinfo=ZoneInfo("UTC")), ("2025-03-05", "2025-03-08")),
        ("Europe/Berlin", dt.datetime(2025, 10, 26, 23, 5, tzinfo=ZoneInfo("UTC")), ("2025-10-23", "2025-10-26")),
        ("Pacific/Auckland", dt.datetime(2025, 4, 6, 12, 5, tzinfo=ZoneInfo("UTC")), ("2025-04-03", "2025-04-06")),
    ],
)
def test_tick_requests_the_closed_day_and_the_lookback(zone, tick, expected):
    assert run_range(settings(zone), tick) == expected


def test_range_is_clipped_at_the_start_date():
    start = dt.date(2025, 3, 8)
    tick = dt.datetime(2025, 3, 10, 0, 5, tzinfo=ZoneInfo("UTC"))
    assert run_range(settings("UTC", start=start), tick) == ("2025-03-08", "2025-03-09")
    assert run_range(settings("UTC", start=dt.date(2025, 3, 10)), tick) is None


def test_zero_lookback_requests_only_the_closed_day():
    tick = dt.datetime(2025, 3, 10, 0, 5, tzinfo=ZoneInfo("UTC"))
    assert run_range(settings("UTC", lookback=0), tick) == ("2025-03-09", "2025-03-09")
