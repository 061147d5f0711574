"""Knowing that data is late: with a fixed clock, a missing last day fails the freshness check
of `lms_completions` once the configured hour has passed, and its presence makes it pass."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time  # Dagster's own fixed clock for its time functions

from completions_assets.connections import load_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.freshness import build_freshness_checks, build_freshness_sensors
from completions_assets.defs.resources import build_resources
from completions_assets.keys import LMS
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.settings import Settings
from completions_assets_tests.support import source_key

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")
SETTINGS = Settings(
    start_date=dt.date(2024, 1, 1), timezone="Europe/Berlin", lookback_days=3, data_root="/tmp/x", freshness_hour=6
)
CONNECTIONS = load_connections(PROVIDERS, {})


def evaluate(instance: dg.DagsterInstance, now: dt.datetime) -> dict[dg.AssetKey, bool]:
    """Each asset's freshness result, evaluated at `now` as the sensor would launch it."""
    assets = build_assets(daily_partitions(SETTINGS), CONNECTIONS)
    checks = build_freshness_checks(next(a for a in assets if LMS in a.keys), SETTINGS)
    with freeze_time(now):
        result = dg.materialize(
            [*assets, *checks],
            instance=instance,
            resources=build_resources(CONNECTIONS, SETTINGS),
            selection=dg.AssetSelection.checks(*checks),
        )
    return {e.asset_key: e.passed for e in result.get_asset_check_evaluations()}


def record(instance: dg.DagsterInstance, day: str) -> None:
    for key in (source_key("bindbee"), source_key("nexudus"), LMS):
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))


@pytest.mark.parametrize(
    ("now", "recorded", "fresh"),
    [
        # At 07:00 on the 10th, the 9th is due (deadline 06:00 in COMPLETIONS_TIMEZONE).
        (dt.datetime(2024, 3, 10, 7, 0, tzinfo=BERLIN), ["2024-03-08"], False),
        (dt.datetime(2024, 3, 10, 7, 0, tzinfo=BERLIN), ["2024-03-08", "2024-03-09"], True),
        # At 05:59 the 9th is not due yet: the 8th is what must be there.
        (dt.datetime(2024, 3, 10, 5, 59, tzinfo=BERLIN), ["2024-03-08"], True),
        (dt.datetime(2024, 3, 10, 5, 59, tzinfo=BERLIN), [], False),
    ],
)
def test_a_missing_last_day_is_overdue_after_the_configured_hour(now, recorded, fresh):
    instance = dg.DagsterInstance.ephemeral()
    for day in recorded:
        record(instance, day)
    results = evaluate(instance, now)
    assert results == {LMS: fresh}  # a connection lacking a day fails all_connections_present instead


def test_freshness_can_be_turned_off():
    off = Settings(start_date=dt.date(2024, 1, 1), timezone="UTC", lookback_days=3, data_root="", freshness_hour=None)
    assets = build_assets(daily_partitions(off), CONNECTIONS)
    assert build_freshness_checks(next(a for a in assets if LMS in a.keys), off) == []
    assert build_freshness_sensors([]) == []
