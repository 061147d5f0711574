"""The sandbox's ground truth in the shape of the Parquet files, built independently
of the clients' parsing, so end-to-end tests compare record by record."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from completions_assets.lms.schema import LMS_SCHEMA
from completions_assets.providers.bindbee import BINDBEE_SCHEMA
from completions_assets.providers.nexudus.lessons import NEXUDUS_SCHEMA
from completions_assets.sandbox import Sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import source_dir


def _utc(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(dt.timezone.utc)


def _ref(value: dict[str, Any] | str | None) -> str | None:
    return value.get("id") if isinstance(value, dict) else value


def expected_bindbee(sandbox: Sandbox, start: dt.datetime, end: dt.datetime) -> list[dict]:
    ids = set(sandbox.dataset.ground_truth("bindbee", start, end))
    rows = [
        {
            "id": r["id"],
            "user": _ref(r["user"]),
            "course": _ref(r["course"]),
            "content": _ref(r["content"]),
            "score": None if r["score"] is None else float(r["score"]),
            "grade": r["grade"],
            "completed_at": _utc(r["completed_at"]),
            "started_at": _utc(r["started_at"]),
            "modified_at": _utc(r["modified_at"]),
            "time_duration": r["time_duration"],
            "remote_id": r["remote_id"],
        }
        for r in sandbox.dataset.records("bindbee")
        if r["id"] in ids
    ]
    assert len(rows) == len(ids)
    return sorted(rows, key=lambda row: (row["completed_at"], row["id"]))


def expected_nexudus(sandbox: Sandbox, start: dt.datetime, end: dt.datetime) -> list[dict]:
    ids = set(sandbox.dataset.ground_truth("nexudus", start, end))
    rows = [
        {
            "id": r["Id"],
            "unique_id": r["UniqueId"],
            "course_lesson_id": r["CourseLessonId"],
            "course_lesson_title": r["CourseLessonTitle"],
            "course_member_id": r["CourseMemberId"],
            "course_member_coworker_full_name": r["CourseMemberCoworkerFullName"],
            "created_on": _utc(r["CreatedOn"]),
            "updated_on": _utc(r["UpdatedOn"]),
        }
        for r in sandbox.dataset.records("nexudus")
        if str(r["Id"]) in ids
    ]
    assert len(rows) == len(ids)
    return sorted(rows, key=lambda row: (row["created_on"], row["id"]))


def file_rows(table: pa.Table, columns: list[str]) -> list[dict]:
    return table.select(columns).to_pylist()


def day_bounds_utc(day: str, zone: str = "UTC") -> tuple[dt.datetime, dt.datetime]:
    date = dt.date.fromisoformat(day)
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(date, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    return start, end


def assert_day_matches_ground_truth(sandbox, storage: ParquetStorage, day: str, zone: str = "UTC"):
    start, end = day_bounds_utc(day, zone)
    date = dt.date.fromisoformat(day)
    bindbee = storage.read(source_dir("bindbee"), date)
    nexudus = storage.read(source_dir("nexudus"), date)
    merged = storage.read("lms_completions", date)
    assert bindbee is not None and nexudus is not None and merged is not None
    assert bindbee.schema.equals(BINDBEE_SCHEMA) and nexudus.schema.equals(NEXUDUS_SCHEMA)
    assert merged.schema.equals(LMS_SCHEMA)
    want_b = expected_bindbee(sandbox, start, end)
    want_n = expected_nexudus(sandbox, start, end)
    assert file_rows(bindbee, list(want_b[0]) if want_b else ["id"]) == want_b
    assert file_rows(nexudus, list(want_n[0]) if want_n else ["id"]) == want_n
    assert set(merged["connection"].to_pylist()) <= {"default"}
    merged_keys = sorted(zip(merged["provider"].to_pylist(), merged["completion_id"].to_pylist(), strict=True))
    assert merged_keys == sorted([("bindbee", r["id"]) for r in want_b] + [("nexudus", str(r["id"])) for r in want_n])
    return len(want_b), len(want_n)
