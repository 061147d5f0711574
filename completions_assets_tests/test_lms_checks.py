import datetime as dt
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from completions_assets.lms import checks as rules
from completions_assets.lms.checks import Day
from completions_assets.lms.schema import LMS_SCHEMA
from completions_assets.partitions import partition_day

pytestmark = pytest.mark.unit

UTC = dt.timezone.utc
PARTITION = partition_day(dt.date(2024, 3, 1), ZoneInfo("UTC"))


def lms(*rows: dict) -> pa.Table:
    base = {
        "provider": "bindbee",
        "connection": "acme",
        "user_id": "u",
        "completed_at": PARTITION.start,
        "completion_date": PARTITION.date,
    }
    full = [{name: {**base, **row}.get(name) for name in LMS_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=LMS_SCHEMA)


def day(table: pa.Table, sources: dict[str, pa.Array] | None = None) -> Day:
    return Day(PARTITION, table, sources or {})


GOOD = lms(
    {"completion_id": "1"}, {"completion_id": "2", "provider": "nexudus"}, {"completion_id": "1", "provider": "nexudus"}
)


def test_good_day_passes_every_rule():
    for rule in (
        rules.unique_completion_ids,
        rules.required_fields_present,
        rules.started_before_completed,
        rules.score_in_range,
        rules.grade_in_allowed_set,
    ):
        assert rule(day(GOOD)).passed, rule.__name__
    assert rules.completed_within_partition(day(GOOD)).passed


def test_duplicate_ids_are_counted_with_examples():
    result = rules.unique_completion_ids(day(lms({"completion_id": "1"}, {"completion_id": "1"})))
    assert (result.passed, result.failed_rows, result.examples) == (False, 2, ("bindbee:acme:1",))


def test_missing_user_id_fails_required_fields():
    result = rules.required_fields_present(day(lms({"completion_id": "9", "user_id": None})))
    assert (result.failed_rows, result.examples) == (1, ("bindbee:acme:9",))
    assert result.metadata()["nulls_user_id"] == 1


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (PARTITION.start, True),
        (PARTITION.end - dt.timedelta(microseconds=1), True),
        (PARTITION.end, False),
        (PARTITION.start - dt.timedelta(microseconds=1), False),
    ],
)
def test_the_day_is_half_open(at, inside):
    result = rules.completed_within_partition(day(lms({"completion_id": "x", "completed_at": at})))
    assert result.passed is inside


def test_a_source_row_lost_in_the_merge_is_reported():
    sources = {"bindbee:acme": pa.array(["1", "lost"]), "nexudus:acme": pa.array(["1", "2"])}
    result = rules.reconciles_with_sources(day(GOOD, sources))
    assert (result.passed, result.examples) == (False, ("bindbee:acme:lost",))
    assert result.details["source_rows"].value == {"bindbee:acme": 2, "nexudus:acme": 2}
    assert rules.reconciles_with_sources(
        day(GOOD, {"bindbee:acme": pa.array(["1"]), "nexudus:acme": pa.array(["2", "1"])})
    ).passed


def test_reconciliation_counts_every_lost_extra_and_repeated_row_and_names_the_first():
    merged = lms(*({"completion_id": str(i)} for i in (7, 8, 8, 9)))  # 8 twice; 8 and 9 are no source's
    sources = {"bindbee:acme": pa.array([str(i) for i in range(8)])}  # 0..6 lost in the merge
    result = rules.reconciles_with_sources(day(merged, sources))
    assert result.failed_rows == 7 + 2 + 1  # lost, extra, one row too many
    assert result.examples == tuple(f"bindbee:acme:{i}" for i in range(5))  # the first, in order
    lost = rules.reconciles_with_sources(day(merged, {"bindbee:acme": pa.array(["7", "8", "9", "10"])}))
    assert (lost.failed_rows, lost.examples) == (2, ("bindbee:acme:10", "bindbee:acme:8"))


def test_reconciliation_is_per_connection():
    two = lms({"completion_id": "1"}, {"completion_id": "1", "connection": "globex"})
    sources = {"bindbee:acme": pa.array(["1"]), "bindbee:globex": pa.array(["1"])}
    assert rules.reconciles_with_sources(day(two, sources)).passed
    assert rules.unique_completion_ids(day(two)).passed  # same id, two connections: two completions
    moved = {"bindbee:acme": pa.array(["1"]), "bindbee:globex": pa.array(["2"])}
    result = rules.reconciles_with_sources(day(two, moved))
    assert set(result.examples) == {"bindbee:globex:2", "bindbee:globex:1"}
    orphan = rules.reconciles_with_sources(day(two, {"bindbee:acme": pa.array(["1"])}))
    assert orphan.examples == ("bindbee:globex:1",)  # a row of a connection without a file


def test_all_connections_present_names_the_missing_and_the_failed():
    assert rules.all_connections_present(day(GOOD)).passed
    result = rules.all_connections_present(
        Day(PARTITION, GOOD, {}, absent=("nexudus:paris",), failed=("bindbee:acme",))
    )
    assert (result.passed, result.examples) == (False, ("bindbee:acme", "nexudus:paris"))
    assert result.details == {"connections_without_file": ["nexudus:paris"], "connections_failed": ["bindbee:acme"]}


def test_warning_rules_flag_bad_values():
    late_start = lms({"completion_id": "s", "started_at": PARTITION.start + dt.timedelta(hours=1)})
    assert rules.started_before_completed(day(late_start)).examples == ("bindbee:acme:s",)
    assert rules.score_in_range(day(lms({"completion_id": "a", "score": 100.5}))).failed_rows == 1
    assert rules.score_in_range(day(lms({"completion_id": "a", "score": 0.0}))).passed
    assert rules.grade_in_allowed_set(day(lms({"completion_id": "g", "grade": "E"}))).failed_rows == 1
    assert rules.grade_in_allowed_set(day(lms({"completion_id": "g", "grade": "-"}))).passed
