"""Schema drift through Dagster: unknown fields are reported and never break a run, omitted
optional fields become nulls, numbers sent as text are read exactly, and a value of a wrong
type that cannot be read safely fails the run naming provider, page and field."""

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import (
    assert_day_matches_ground_truth,
    day_bounds_utc,
    expected_bindbee,
    expected_nexudus,
)
from completions_assets_tests.support import materialize_range, resources, source_key

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-02", "2024-03-06"
DAYS = [(dt.date(2024, 3, 2) + dt.timedelta(days=i)).isoformat() for i in range(5)]
NO_WAIT = {"backoff_initial_s": 0.0}
# Any: `resources(..., **FAST)` also offers each value to its `zone: str` parameter.
FAST: dict[str, Any] = {
    "bindbee": {**NO_WAIT, "page_size": 50},
    "nexudus": {**NO_WAIT, "page_size": 100, "min_interval_ms": 0},
}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(SandboxConfig(seed=31, start_date=dt.date(2024, 3, 1), days=7, records_per_day=40)) as running:
        yield running


def drifted_run(sb: Sandbox, root: str, mode: str) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    sb.update(bindbee=ProviderFaults(drift=mode), nexudus=ProviderFaults(drift=mode))
    try:
        instance = dg.DagsterInstance.ephemeral()
        return materialize_range(FIRST, LAST, resources(sb.base_url, root, **FAST), instance), instance
    finally:
        sb.update(bindbee=ProviderFaults(), nexudus=ProviderFaults())


def metadata(instance: dg.DagsterInstance, provider: str, day: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=source_key(provider), asset_partitions=[day]), limit=1
    ).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {key: value.value for key, value in materialization.metadata.items()}


def test_unknown_fields_are_reported_in_metadata_and_never_break_a_run(sb, tmp_path):
    result, instance = drifted_run(sb, str(tmp_path), "unknown_fields")
    assert result.success
    storage = ParquetStorage(root=str(tmp_path))
    for day in DAYS:
        assert_day_matches_ground_truth(sb, storage, day)
        assert metadata(instance, "bindbee", day)["unknown_fields"] == ["attempt_count", "completion_source"]
        assert metadata(instance, "nexudus", day)["unknown_fields"] == ["CertificateUrl", "CourseLessonDurationMinutes"]


def test_a_clean_run_reports_no_unknown_fields(sb, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(FIRST, FIRST, resources(sb.base_url, str(tmp_path), **FAST), instance).success
    for provider in ("bindbee", "nexudus"):
        assert "unknown_fields" not in metadata(instance, provider, FIRST)


def test_omitted_optional_fields_become_nulls_and_the_rest_is_exact(sb, tmp_path):
    result, _ = drifted_run(sb, str(tmp_path), "omit_optional")
    assert result.success  # every check passed too
    storage = ParquetStorage(root=str(tmp_path))
    optional = {
        "bindbee_completions": ["remote_id", "modified_at", "score", "grade", "started_at", "time_duration"],
        "nexudus_completions": [
            "unique_id",
            "course_lesson_title",
            "course_member_coworker_full_name",
            "updated_on",
            "updated_by",
            "is_new",
            "system_id",
            "custom_fields",
        ],
    }
    for day in DAYS:
        start, end = day_bounds_utc(day)
        date = dt.date.fromisoformat(day)
        for asset, expected, kept in (
            (
                "bindbee_completions",
                expected_bindbee(sb, start, end),
                ["id", "user", "course", "content", "completed_at"],
            ),
            (
                "nexudus_completions",
                expected_nexudus(sb, start, end),
                ["id", "course_lesson_id", "course_member_id", "created_on"],
            ),
        ):
            table = storage.read(f"{asset}/connection=default", date)
            assert table.select(kept).to_pylist() == [{k: row[k] for k in kept} for row in expected]
            assert all(table[name].null_count == table.num_rows for name in optional[asset])
        assert storage.read("lms_completions", date).num_rows == len(expected_bindbee(sb, start, end)) + len(
            expected_nexudus(sb, start, end)
        )


def test_numbers_sent_as_strings_are_read_exactly(sb, tmp_path):
    result, _ = drifted_run(sb, str(tmp_path), "number_as_string")
    assert result.success
    storage = ParquetStorage(root=str(tmp_path))
    for day in DAYS:
        assert_day_matches_ground_truth(sb, storage, day)


def digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


def test_a_wrong_type_that_cannot_be_read_safely_fails_naming_provider_page_and_field(sb, tmp_path):
    assert materialize_range(
        FIRST, LAST, resources(sb.base_url, str(tmp_path), **FAST), dg.DagsterInstance.ephemeral()
    ).success
    before = digest(tmp_path)
    result, instance = drifted_run(sb, str(tmp_path), "bad_type")
    assert not result.success
    failures = {
        e.step_key: e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }
    bindbee, nexudus = "bindbee_completions", "nexudus_completions"
    assert set(failures) == {bindbee, nexudus}
    assert "bindbee: page 1 (GET " in failures[bindbee]
    assert "field 'completed_at' is not an ISO 8601 timestamp: 17" in failures[bindbee]
    assert "nexudus: page 1 (GET " in failures[nexudus]
    assert "field 'created_on' is not an ISO 8601 timestamp: 17" in failures[nexudus]
    assert digest(tmp_path) == before
    assert not instance.get_materialized_partitions(dg.AssetKey("lms_completions"))
    assert not list(tmp_path.rglob("_tmp-*"))
