import datetime as dt

import pyarrow as pa
import pytest

from completions_assets.lms.schema import BINDBEE_SCHEMA, LMS_SCHEMA, NEXUDUS_SCHEMA
from completions_assets.lms.merge import UnifyError, duration_seconds, keep_latest, merge_day

UTC = dt.timezone.utc
DAY = dt.date(2024, 3, 1)


def ts(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, 1, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT1H15M", 4500), ("PT45M", 2700), ("PT30S", 30), ("P1DT2H", 93600),
     ("PT1.9S", 1), ("P1W", 604800), ("PT0S", 0), (None, None)],
)
def test_iso_durations_become_whole_seconds(text, seconds):
    assert duration_seconds(pa.array([text], pa.string())).to_pylist() == [seconds]


@pytest.mark.parametrize("text", ["1H", "P1M", "PT1H15", "soon"])
def test_unreadable_durations_are_refused_by_name(text):
    with pytest.raises(UnifyError, match=repr(text).replace("(", r"\(")):
        duration_seconds(pa.array(["PT1M", text]))


def bindbee_rows(*rows: dict) -> pa.Table:
    full = [{name: row.get(name) for name in BINDBEE_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=BINDBEE_SCHEMA)


def nexudus_rows(*rows: dict) -> pa.Table:
    full = [{name: row.get(name) for name in NEXUDUS_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=NEXUDUS_SCHEMA)


def test_merge_maps_both_providers_to_the_unified_schema():
    bindbee = bindbee_rows(
        {"id": "b-1", "user": "u-1", "course": "c-1", "score": 95.0, "grade": "PASS",
         "started_at": ts(9), "completed_at": ts(10), "time_duration": "PT1H", "modified_at": ts(11)}
    )
    nexudus = nexudus_rows(
        {"id": 42, "course_member_id": 7, "course_member_coworker_full_name": "Zoë Ångström",
         "course_lesson_id": 3, "course_lesson_title": "Intro", "created_on": ts(8), "updated_on": ts(12)}
    )
    merged = merge_day(bindbee, nexudus, DAY)
    assert merged.schema.equals(LMS_SCHEMA)
    assert merged.to_pylist() == [
        {"provider": "nexudus", "completion_id": "42", "user_id": "7", "user_name": "Zoë Ångström",
         "course_id": None, "content_id": "3", "content_title": "Intro", "started_at": None,
         "completed_at": ts(8), "duration_seconds": None, "score": None, "grade": None,
         "modified_at": ts(12), "completion_date": DAY},
        {"provider": "bindbee", "completion_id": "b-1", "user_id": "u-1", "user_name": None,
         "course_id": "c-1", "content_id": None, "content_title": None, "started_at": ts(9),
         "completed_at": ts(10), "duration_seconds": 3600, "score": 95.0, "grade": "PASS",
         "modified_at": ts(11), "completion_date": DAY},
    ]


def test_duplicates_keep_the_latest_modified_row():
    bindbee = bindbee_rows(
        {"id": "b-1", "user": "old", "completed_at": ts(10), "modified_at": ts(11)},
        {"id": "b-1", "user": "new", "completed_at": ts(10), "modified_at": ts(13)},
        {"id": "b-1", "user": "undated", "completed_at": ts(10), "modified_at": None},
        {"id": "b-2", "user": "other", "completed_at": ts(9), "modified_at": ts(9)},
    )
    merged = merge_day(bindbee, nexudus_rows(), DAY)
    assert merged.select(["completion_id", "user_id"]).to_pylist() == [
        {"completion_id": "b-2", "user_id": "other"},
        {"completion_id": "b-1", "user_id": "new"},
    ]


def test_same_id_from_two_providers_is_not_a_duplicate():
    table = pa.table({"provider": ["bindbee", "nexudus"], "completion_id": ["1", "1"], "v": [1, 2]})
    assert keep_latest(table, ["provider", "completion_id"], "v").num_rows == 2
