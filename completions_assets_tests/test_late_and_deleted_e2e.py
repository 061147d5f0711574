"""Records that change after their day was first materialized: late arrivals are
picked up by the schedule's lookback, deletions vanish on the re-fetch, and the
materialization says how many rows came and went."""

import datetime as dt

import dagster as dg
import pytest

from completions_assets.defs.schedules import build_schedule
from completions_assets.sandbox import SandboxConfig, start_sandbox
from completions_assets.settings import Settings
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import materialize_range, resources, source_dir

pytestmark = pytest.mark.e2e

UTC = dt.timezone.utc
SETTINGS = Settings(start_date=dt.date(2024, 1, 1), timezone="UTC", lookback_days=3, data_root="")


def scheduled_range(tick: dt.datetime) -> tuple[str, str]:
    schedule = build_schedule(SETTINGS)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert requests
    range_ = requests[0].partition_key_range
    assert range_ is not None
    return range_.start, range_.end


def latest_metadata(instance: dg.DagsterInstance, asset: str, day: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey.from_user_string(asset), asset_partitions=[day]), limit=1
    ).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {key: value.value for key, value in materialization.metadata.items()}


def ground_truth(sb, day: str) -> set[str]:
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=UTC)
    end = start + dt.timedelta(days=1)
    return {i for provider in ("bindbee", "nexudus") for i in sb.dataset.ground_truth(provider, start, end)}


def lms_ids(storage: ParquetStorage, day: str) -> set[str]:
    table = storage.read("lms_completions", dt.date.fromisoformat(day))
    assert table is not None
    return set(table["completion_id"].to_pylist())


def test_late_record_reaches_lms_through_the_next_scheduled_lookback(tmp_path):
    first_tick = dt.datetime(2024, 3, 6, 0, 5, tzinfo=UTC)
    config = SandboxConfig(
        seed=21, start_date=dt.date(2024, 3, 1), days=8, records_per_day=40, late_fraction=0.2, now=first_tick
    )
    with start_sandbox(config) as sb:
        table = sb.dataset.tables["bindbee"]
        start_ms = int(dt.datetime(2024, 3, 3, tzinfo=UTC).timestamp() * 1000)
        late = next(
            r
            for r in table.records
            if start_ms <= r.event_ms < first_tick.timestamp() * 1000
            and first_tick.timestamp() * 1000 < r.visible_ms <= start_ms + 5 * 86_400_000
        )
        day = dt.datetime.fromtimestamp(late.event_ms / 1000, UTC).date().isoformat()
        instance = dg.DagsterInstance.ephemeral()
        res = resources(sb.base_url, str(tmp_path))
        storage = ParquetStorage(root=str(tmp_path))

        assert materialize_range(*scheduled_range(first_tick), res, instance).success
        assert late.id not in lms_ids(storage, day)
        visible_before = ground_truth(sb, day)

        next_tick = dt.datetime.fromtimestamp(late.visible_ms / 1000, UTC).replace(hour=0, minute=5) + dt.timedelta(
            days=1
        )
        sb.update(now=next_tick)
        first, last = scheduled_range(next_tick)
        assert first <= day <= last
        assert materialize_range(first, last, res, instance).success
        arrived = ground_truth(sb, day) - visible_before
    assert late.id in lms_ids(storage, day) and late.id in arrived
    assert lms_ids(storage, day) == ground_truth(sb, day)
    changes = latest_metadata(instance, "lms_completions", day)
    assert (changes["rows_added"], changes["rows_removed"]) == (len(arrived), 0)


def test_deleted_nexudus_record_disappears_and_the_change_is_reported(tmp_path):
    config = SandboxConfig(seed=22, start_date=dt.date(2024, 3, 1), days=4, records_per_day=40)
    day = "2024-03-02"
    with start_sandbox(config) as sb:
        instance = dg.DagsterInstance.ephemeral()
        res = resources(sb.base_url, str(tmp_path))
        assert materialize_range(day, day, res, instance).success
        storage = ParquetStorage(root=str(tmp_path))
        before = storage.read(source_dir("nexudus"), dt.date.fromisoformat(day))["id"].to_pylist()
        assert latest_metadata(instance, "nexudus_completions/default", day)["rows_added"] == len(before)
        gone = str(before[len(before) // 2])
        sb.update(delete={"nexudus": [gone]})
        assert materialize_range(day, day, res, instance).success
    after = storage.read(source_dir("nexudus"), dt.date.fromisoformat(day))["id"].to_pylist()
    assert sorted(map(str, before)) == sorted([*map(str, after), gone])
    for asset in ("nexudus_completions/default", "lms_completions"):
        changes = latest_metadata(instance, asset, day)
        assert (changes["rows_added"], changes["rows_removed"]) == (0, 1), asset
    assert gone not in lms_ids(storage, day)
