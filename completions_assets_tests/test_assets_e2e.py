"""Runs through Dagster against the sandbox; files compared with ground truth."""

import datetime as dt

import dagster as dg
import pyarrow.dataset as ds
import pytest

from completions_assets.local.run_report import check_results
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import (
    LMS_CHECK_NAMES,
    MEMBERS_CHECK_NAMES,
    materialize_range,
    resources,
    source_dir,
    source_key,
)

pytestmark = pytest.mark.e2e


def days(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def test_one_day_lands_exactly(sandbox, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range("2024-03-05", "2024-03-05", resources(sandbox.base_url, str(tmp_path)), instance)
    assert result.success
    storage = ParquetStorage(root=str(tmp_path))
    counts = assert_day_matches_ground_truth(sandbox, storage, "2024-03-05")
    assert all(counts), "the sandbox day should hold records of both providers"
    evaluations = check_results(instance, result.run_id)
    assert {(e.check_name, e.partition, e.passed) for e in evaluations} == (
        {
            (name, "2024-03-05", True)
            for name in LMS_CHECK_NAMES | {"no_duplicate_ids", "matches_reported_total", "no_mass_removal"}
        }
        | {(name, None, True) for name in MEMBERS_CHECK_NAMES}
    )


def test_ten_day_range_is_one_run_with_a_check_result_per_day(sandbox, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range("2024-03-03", "2024-03-12", resources(sandbox.base_url, str(tmp_path)), instance)
    assert result.success
    storage = ParquetStorage(root=str(tmp_path))
    for day in days("2024-03-03", 10):
        assert_day_matches_ground_truth(sandbox, storage, day)
    for name in LMS_CHECK_NAMES:
        key = dg.AssetCheckKey(dg.AssetKey("lms_completions"), name)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
        assert sorted(record.partition for record in history) == days("2024-03-03", 10)
        assert {record.status.value for record in history} == {"SUCCEEDED"}
    materialized = instance.get_materialized_partitions(dg.AssetKey("lms_completions"))
    assert materialized == set(days("2024-03-03", 10))
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=source_key("nexudus"), asset_partitions=["2024-03-07"]),
        limit=1,
    ).records[0]
    metadata = record.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == storage.read(source_dir("nexudus"), dt.date(2024, 3, 7)).num_rows
    assert {
        "path",
        "requests",
        "pages",
        "retries",
        "rate_limit_wait_seconds",
        "total_items_reported",
        "dagster/column_schema",
    } <= set(metadata)


def test_non_utc_zone_cuts_days_at_local_midnight(sandbox, tmp_path):
    zone = "America/New_York"
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(
        "2024-03-09", "2024-03-11", resources(sandbox.base_url, str(tmp_path), zone), instance, zone=zone
    )
    assert result.success
    storage = ParquetStorage(root=str(tmp_path))
    for day in days("2024-03-09", 3):  # 2024-03-10 is 23 hours long in New York
        assert_day_matches_ground_truth(sandbox, storage, day, zone)


def test_rerun_gives_byte_identical_files_and_the_tree_is_one_hive_dataset(sandbox, tmp_path):
    res = resources(sandbox.base_url, str(tmp_path))
    assert materialize_range("2024-03-04", "2024-03-06", res, dg.DagsterInstance.ephemeral()).success
    files = sorted(tmp_path.rglob("data.parquet"))
    before = {path: path.read_bytes() for path in files}
    assert materialize_range("2024-03-05", "2024-03-05", res, dg.DagsterInstance.ephemeral()).success
    assert {path: path.read_bytes() for path in sorted(tmp_path.rglob("data.parquet"))} == before
    dataset = ds.dataset(tmp_path / "lms_completions", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == sum(
        ParquetStorage(root=str(tmp_path)).read("lms_completions", dt.date.fromisoformat(d)).num_rows
        for d in days("2024-03-04", 3)
    )
    assert sorted({str(d) for d in table["date"].to_pylist()}) == days("2024-03-04", 3)
