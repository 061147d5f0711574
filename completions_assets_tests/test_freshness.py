"""Knowing that data is late: as of a given time, a missing last day fails the freshness check
of `lms_completions` once the configured hour has passed, and its presence makes it pass; the
sensor asks for one run of it per deadline."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from completions_assets.connections import load_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.freshness import FRESHNESS, build_freshness_checks, build_freshness_sensors, due_day
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
    """Each asset's freshness result, evaluated as of `now` (the check's run config)."""
    assets = build_assets(daily_partitions(SETTINGS), CONNECTIONS)
    [check] = build_freshness_checks(SETTINGS)
    result = dg.materialize(
        [*assets, check],
        instance=instance,
        resources=build_resources(CONNECTIONS, SETTINGS),
        selection=dg.AssetSelection.checks(check),
        run_config={"ops": {check.op.name: {"config": {"as_of": now.isoformat()}}}},
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
        # 06:30 in Berlin is 05:30 UTC: the deadline is Berlin's.
        (dt.datetime(2024, 3, 10, 5, 30, tzinfo=dt.timezone.utc), ["2024-03-08"], False),
    ],
)
def test_a_missing_last_day_is_overdue_after_the_configured_hour(now, recorded, fresh):
    instance = dg.DagsterInstance.ephemeral()
    for day in recorded:
        record(instance, day)
    results = evaluate(instance, now)
    assert results == {LMS: fresh}  # a connection lacking a day fails all_connections_present instead


def test_no_day_is_due_before_the_start_date():
    assert due_day(dt.datetime(2024, 1, 1, 12, 0, tzinfo=BERLIN), SETTINGS) is None
    assert due_day(dt.datetime(2024, 1, 2, 6, 0, tzinfo=BERLIN), SETTINGS) == dt.date(2024, 1, 1)


def test_the_sensor_asks_for_one_run_of_the_check_per_deadline():
    [sensor] = build_freshness_sensors(SETTINGS)
    [request] = sensor.evaluate_tick(dg.build_sensor_context()).run_requests or []
    due = due_day(dt.datetime.now(dt.timezone.utc), SETTINGS)
    assert request.run_key == f"freshness-{due}" and request.asset_check_keys == [FRESHNESS]
    assert not request.asset_selection


def test_freshness_can_be_turned_off():
    off = Settings(start_date=dt.date(2024, 1, 1), timezone="UTC", lookback_days=3, data_root="", freshness_hour=None)
    assert build_freshness_checks(off) == []
    assert build_freshness_sensors(off) == []
