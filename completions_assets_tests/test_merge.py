import datetime as dt

import pyarrow as pa
import pytest

from completions_assets.connections import Connection, default_connection
from completions_assets.lms.dedupe import keep_latest
from completions_assets.lms.merge import merge_day
from completions_assets.lms.schema import LMS_SCHEMA
from completions_assets.providers.bindbee import BINDBEE, BINDBEE_SCHEMA
from completions_assets.providers.nexudus import NEXUDUS
from completions_assets.providers.nexudus.lessons import NEXUDUS_SCHEMA
from completions_assets.providers.nexudus.members import MEMBERS_SCHEMA

pytestmark = pytest.mark.unit

UTC = dt.timezone.utc
BB, NX = default_connection(BINDBEE, {}), default_connection(NEXUDUS, {})
DAY = dt.date(2024, 3, 1)


def ts(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, 1, hour, minute, tzinfo=UTC)


def bindbee_rows(*rows: dict) -> pa.Table:
    full = [{name: row.get(name) for name in BINDBEE_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=BINDBEE_SCHEMA)


def nexudus_rows(*rows: dict) -> pa.Table:
    full = [{name: row.get(name) for name in NEXUDUS_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=NEXUDUS_SCHEMA)


def test_merge_maps_both_providers_to_the_unified_schema():
    bindbee = bindbee_rows(
        {
            "id": "b-1",
            "user": "u-1",
            "course": "c-1",
            "score": 95.0,
            "grade": "PASS",
            "started_at": ts(9),
            "completed_at": ts(10),
            "time_duration": "PT1H",
            "modified_at": ts(11),
            "user_name": "Ada Lovelace",
            "user_email": "ada@example.com",
            "course_name": "Fire Safety",
        }
    )
    nexudus = nexudus_rows(
        {
            "id": 42,
            "course_member_id": 7,
            "course_member_coworker_full_name": "Zoë Ångström",
            "course_member_coworker_company_name": "Nordlys AS",
            "course_member_coworker_team_names": "Design, Sales",
            "course_lesson_id": 3,
            "course_lesson_title": "Intro",
            "created_on": ts(8),
            "updated_on": ts(12),
        }
    )
    members = pa.Table.from_pylist(
        [{"id": 7, "coworker_id": 900, "course_id": 55, "course_title": "Onboarding", "coworker_full_name": "Zoë"}],
        schema=MEMBERS_SCHEMA,
    )
    merged = merge_day({BB: bindbee, NX: nexudus}, DAY, {NX: members}).table
    assert merged.schema.equals(LMS_SCHEMA)
    assert merged.to_pylist() == [
        {
            "provider": "nexudus",
            "connection": "default",
            "completion_id": "42",
            "user_id": "7",
            "user_name": "Zoë Ångström",
            "course_id": "55",
            "content_id": "3",
            "content_title": "Intro",
            "started_at": None,
            "completed_at": ts(8),
            "duration_seconds": None,
            "score": None,
            "grade": None,
            "modified_at": ts(12),
            "completion_date": DAY,
            "person_id": "900",
            "course_title": "Onboarding",
            "user_email": None,
            "company_name": "Nordlys AS",
            "team_names": "Design, Sales",
        },
        {
            "provider": "bindbee",
            "connection": "default",
            "completion_id": "b-1",
            "user_id": "u-1",
            "user_name": "Ada Lovelace",
            "course_id": "c-1",
            "content_id": None,
            "content_title": None,
            "started_at": ts(9),
            "completed_at": ts(10),
            "duration_seconds": 3600,
            "score": 95.0,
            "grade": "PASS",
            "modified_at": ts(11),
            "completion_date": DAY,
            "person_id": "u-1",
            "course_title": "Fire Safety",
            "user_email": "ada@example.com",
            "company_name": None,
            "team_names": None,
        },
    ]


def test_enrolments_missing_from_the_snapshot_stay_null_and_are_counted():
    nexudus = nexudus_rows(
        {"id": 1, "course_member_id": 7, "created_on": ts(8)},
        {"id": 2, "course_member_id": 8, "created_on": ts(9)},
        {"id": 3, "course_member_id": 7, "created_on": ts(10)},
    )
    members = pa.Table.from_pylist(
        [
            {"id": 7, "coworker_id": 900, "course_id": 55, "course_title": "Onboarding"},
            {"id": 7, "coworker_id": 900, "course_id": 55, "course_title": "Onboarding"},  # served twice
        ],
        schema=MEMBERS_SCHEMA,
    )
    merged = merge_day({NX: nexudus}, DAY, {NX: members})
    columns = ["completion_id", "person_id", "course_id", "course_title"]
    assert merged.table.select(columns).to_pylist() == [
        {"completion_id": "1", "person_id": "900", "course_id": "55", "course_title": "Onboarding"},
        {"completion_id": "2", "person_id": None, "course_id": None, "course_title": None},
        {"completion_id": "3", "person_id": "900", "course_id": "55", "course_title": "Onboarding"},
    ]
    assert merged.facts["rows_without_nexudus_course_members"] == 1
    missing = merge_day({NX: nexudus}, DAY)  # no snapshot at all
    assert missing.table["person_id"].null_count == 3
    assert missing.facts["rows_without_nexudus_course_members"] == 3


def test_a_raw_file_written_before_the_name_columns_merges_them_as_null():
    old = bindbee_rows({"id": "b-1", "user": "u", "completed_at": ts(10)}).drop_columns(
        ["user_name", "user_email", "course_name", "content_title"]
    )
    merged = merge_day({BB: old}, DAY)
    assert merged.table.select(["person_id", "user_name", "course_title"]).to_pylist() == [
        {"person_id": "u", "user_name": None, "course_title": None}
    ]
    assert merged.facts["bindbee_users_not_expanded"] == 1


def test_duplicates_keep_the_latest_modified_row():
    bindbee = bindbee_rows(
        {"id": "b-1", "user": "old", "completed_at": ts(10), "modified_at": ts(11)},
        {"id": "b-1", "user": "new", "completed_at": ts(10), "modified_at": ts(13)},
        {"id": "b-1", "user": "undated", "completed_at": ts(10), "modified_at": None},
        {"id": "b-2", "user": "other", "completed_at": ts(9), "modified_at": ts(9)},
    )
    merged = merge_day({BB: bindbee, NX: nexudus_rows()}, DAY).table
    assert merged.select(["completion_id", "user_id"]).to_pylist() == [
        {"completion_id": "b-2", "user_id": "other"},
        {"completion_id": "b-1", "user_id": "new"},
    ]


def test_same_id_from_two_providers_is_not_a_duplicate():
    table = pa.table({"provider": ["bindbee", "nexudus"], "completion_id": ["1", "1"], "v": [1, 2]})
    assert keep_latest(table, ["provider", "completion_id"], "v").num_rows == 2


def test_same_id_from_two_connections_of_a_provider_is_two_completions():
    globex = Connection(BINDBEE, "globex", {"connector_token": "X"})
    row = {"id": "b-1", "user": "u", "completed_at": ts(10), "modified_at": ts(11)}
    merged = merge_day({BB: bindbee_rows(row), globex: bindbee_rows(row)}, DAY).table
    assert merged.select(["connection", "completion_id"]).to_pylist() == [
        {"connection": "default", "completion_id": "b-1"},
        {"connection": "globex", "completion_id": "b-1"},
    ]


def test_durations_without_fixed_length_merge_as_null_and_are_counted():
    bindbee = bindbee_rows(
        {"id": "b-1", "user": "u", "completed_at": ts(10), "time_duration": "P1M"},
        {"id": "b-2", "user": "u", "completed_at": ts(11), "time_duration": "PT1.5H"},
        {"id": "b-3", "user": "u", "completed_at": ts(12), "time_duration": "P1Y2M3D"},
    )
    merged = merge_day({BB: bindbee, NX: nexudus_rows()}, DAY)
    assert merged.table["duration_seconds"].to_pylist() == [None, 5400, None]
    # These users came as ids alone: their rows are counted as not expanded.
    assert merged.facts == {
        "durations_without_fixed_length": 2,
        "bindbee_users_not_expanded": 3,
        "rows_without_nexudus_course_members": 0,
    }


def test_the_merge_collects_each_sources_distinct_ids():
    bindbee = bindbee_rows(
        {"id": "b-1", "completed_at": ts(10)},
        {"id": "b-1", "completed_at": ts(10)},
        {"id": "b-2", "completed_at": ts(10)},
    )
    nexudus = nexudus_rows({"id": 42, "created_on": ts(8)})
    merged = merge_day({BB: bindbee, NX: nexudus}, DAY)
    assert {name: sorted(ids.to_pylist()) for name, ids in merged.source_ids.items()} == {
        "bindbee:default": ["b-1", "b-2"],
        "nexudus:default": ["42"],
    }
