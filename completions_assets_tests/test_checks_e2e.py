"""Checks through Dagster: crafted bad days fail the right check with examples,
a completion served twice is merged once and flagged, and a run failing part-way loses nothing."""

import datetime as dt
import hashlib

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from completions_assets.lms.schema import LMS_SCHEMA
from completions_assets.local.run_report import check_results
from completions_assets.sandbox import ProviderFaults, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import materialize_range, resources, source_key

pytestmark = pytest.mark.e2e

DAY = "2024-03-05"
LMS = dg.AssetKey("lms_completions")
NO_WAIT = {"backoff_initial_s": 0.0}


def corrupt(table: pa.Table, how: str) -> pa.Table:
    if how == "duplicate":
        return pa.concat_tables([table, table.slice(0, 1)])
    if how == "outside_window":
        shifted = pc.add(table["completed_at"].slice(0, 1), pa.scalar(dt.timedelta(days=1)))
        return pa.concat_tables(
            [
                table.slice(1),
                table.slice(0, 1).set_column(LMS_SCHEMA.get_field_index("completed_at"), "completed_at", shifted),
            ]
        )
    if how == "missing_user":
        return table.set_column(
            LMS_SCHEMA.get_field_index("user_id"),
            "user_id",
            pa.concat_arrays([pa.nulls(1, pa.string()), table["user_id"].combine_chunks()[1:]]),
        )
    if how == "lost_row":
        return table.filter(pc.not_equal(table["provider"], "nexudus")).slice(1)
    raise ValueError(how)


@pytest.mark.parametrize(
    ("how", "checks"),
    [
        # A duplicated row also makes the provider's row count exceed its source.
        ("duplicate", {"unique_completion_ids", "reconciles_with_sources"}),
        ("outside_window", {"completed_within_partition"}),
        ("missing_user", {"required_fields_present"}),
        ("lost_row", {"reconciles_with_sources"}),
    ],
)
def test_each_error_check_fails_on_crafted_bad_data(sandbox, tmp_path, how, checks):
    res = resources(sandbox.base_url, str(tmp_path))
    assert materialize_range(DAY, DAY, res, dg.DagsterInstance.ephemeral()).success
    storage = ParquetStorage(root=str(tmp_path))
    day = dt.date.fromisoformat(DAY)
    good = storage.read("lms_completions", day)
    storage.write("lms_completions", day, corrupt(good, how), LMS_SCHEMA)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(DAY, DAY, res, instance, selection=dg.AssetSelection.checks_for_assets(LMS))
    failed = {e.check_name: e for e in check_results(instance, result.run_id) if not e.passed}
    assert set(failed) == checks
    for evaluation in failed.values():
        assert evaluation.partition == DAY and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.metadata["failed_rows"].value >= 1
        assert evaluation.metadata["example_ids"].value


def test_a_completion_served_twice_is_merged_once_and_flagged(tmp_path):
    # A provider's checks do not block: its one step serves every connection, and a blocking
    # check would keep them all out of the merge for one connection's day.
    config = SandboxConfig(
        seed=3, start_date=dt.date(2024, 3, 1), days=4, records_per_day=30, bindbee=ProviderFaults(duplicate_on=1)
    )
    with start_sandbox(config) as sb:
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range("2024-03-02", "2024-03-02", resources(sb.base_url, str(tmp_path)), instance)
        start = dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc)
        truth = sb.dataset.ground_truth("bindbee", start, start + dt.timedelta(days=1))
    evaluations = {e.check_name: e for e in check_results(instance, result.run_id)}
    duplicated = evaluations["no_duplicate_ids"]
    assert not duplicated.passed and duplicated.metadata["failed_rows"].value == 2
    assert evaluations["unique_completion_ids"].passed and evaluations["reconciles_with_sources"].passed
    merged = ParquetStorage(root=str(tmp_path)).read("lms_completions", dt.date(2024, 3, 2))
    bindbee = merged.filter(pc.equal(merged["provider"], "bindbee"))["completion_id"].to_pylist()
    assert sorted(bindbee) == sorted(truth)  # each completion once


def digest(tmp_path) -> dict[str, str]:
    return {
        str(p.relative_to(tmp_path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(tmp_path.rglob("*.parquet"))
    }


def test_run_failing_part_way_leaves_every_file_intact(tmp_path):
    config = SandboxConfig(seed=5, start_date=dt.date(2024, 3, 1), days=8, records_per_day=60)
    # One window at a time: day 1 (the first guess, 1 page), then 2-day windows of 2 pages each,
    # so request 4 is the first page of the third window (days 4 and 5).
    slow = {"max_window_days": 2, "max_concurrent_requests": 1, **NO_WAIT}
    with start_sandbox(config) as sb:
        res = resources(sb.base_url, str(tmp_path), bindbee=slow)
        assert materialize_range("2024-03-01", "2024-03-06", res, dg.DagsterInstance.ephemeral()).success
        before = digest(tmp_path)
        sb.update(bindbee=ProviderFaults(truncate_on=4))
        instance = dg.DagsterInstance.ephemeral()
        result = materialize_range("2024-03-01", "2024-03-06", res, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.to_string()
    assert "bindbee" in message.lower() and "json" in message.lower()
    assert digest(tmp_path) == before
    assert instance.get_materialized_partitions(source_key("bindbee")) == {"2024-03-01", "2024-03-02", "2024-03-03"}
    storage = ParquetStorage(root=str(tmp_path))
    for offset in range(6):
        assert storage.read("lms_completions", dt.date(2024, 3, 1) + dt.timedelta(days=offset)).num_rows
