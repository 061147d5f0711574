"""Nexudus CourseCompletedLesson records: generation and their JSON form."""

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import MEMBER_REMOVED, PEOPLE, Catalog, Member, uuid4_from
from .event_times import day_events, day_rng, visible_from
from .timeutil import DAY_MS, MINUTE_MS, date_start_ms, iso_local, iso_z

ID_BASE = 87_000_000  # ids keep eight digits, so numeric and text order agree
_EDITORS = ("admin@example.com", "system", "portal@example.com")


@dataclass(frozen=True, slots=True)
class NexudusRecord:
    id: int  # assigned in order of visibility once every day is generated
    event_ms: int
    visible_ms: int
    updated_ms: int
    lesson: int
    member: int
    unique_id: str
    updated_by: str
    is_new: bool
    system_id: str | None
    custom_salt: int | None


def _record(rng: random.Random, catalog: Catalog, event: int, late: float) -> NexudusRecord:
    visible = visible_from(rng, event, late)
    updated = event if rng.random() < 0.75 else event + rng.randint(MINUTE_MS, 2 * DAY_MS)
    system_id = f"LMS-IMPORT-{rng.randint(100, 999)}" if rng.random() < 0.1 else None
    custom = rng.getrandbits(32) if rng.random() < 0.4 else None
    return NexudusRecord(
        0,
        event,
        visible,
        updated,
        rng.randrange(len(catalog.lessons)),
        rng.randrange(len(catalog.members)),
        uuid4_from(rng),
        rng.choice(_EDITORS),
        rng.random() < 0.05,
        system_id,
        custom,
    )


def generate_day(seed: int, day: dt.date, count: int, catalog: Catalog, late: float) -> list[NexudusRecord]:
    rng = day_rng(seed, "nexudus", day)
    return [_record(rng, catalog, event, late) for event in day_events(rng, date_start_ms(day), count)]


def remove_member(records: list[NexudusRecord]) -> list[NexudusRecord]:
    """MEMBER_REMOVED leaves its course at the end of the first day it completed a lesson on: its
    person's later lessons are completed under their other enrolment, in that enrolment's course."""
    other = MEMBER_REMOVED % PEOPLE
    first = min((r.event_ms for r in records if r.member == MEMBER_REMOVED), default=None)
    if first is None:
        return records
    removed_ms = first - first % DAY_MS + DAY_MS
    return [
        dataclasses.replace(r, member=other) if r.member == MEMBER_REMOVED and r.event_ms >= removed_ms else r
        for r in records
    ]


def corrected(rec: NexudusRecord, now_ms: int) -> NexudusRecord:
    """The record as an operator corrected it through the API: UpdatedOn now, by another editor."""
    return dataclasses.replace(
        rec, updated_ms=max(now_ms, rec.updated_ms + MINUTE_MS), updated_by="corrections@example.com"
    )


def assign_ids(records: list[NexudusRecord]) -> list[NexudusRecord]:
    """Ids grow with creation on the server, i.e. with visibility; returns id order."""
    ordered = sorted(records, key=lambda r: (r.visible_ms, r.event_ms, r.unique_id))
    return [dataclasses.replace(r, id=ID_BASE + i + 1) for i, r in enumerate(ordered)]


_NOTES = ("", "Completed on mobile", "Revisión manual", "已完成")


def _custom_fields(salt: int) -> dict[str, Any]:
    # Derived from the salt's bits: cheaper than seeding a Random per record.
    return {
        "Cohort": f"{2022 + salt % 4}-Q{1 + (salt >> 2) % 4}",
        "Source": ("Portal", "Import", "API")[(salt >> 4) % 3],
        "Notes": _NOTES[(salt >> 8) % len(_NOTES)],
    }


def encode(rec: NexudusRecord, catalog: Catalog, naive_tz: ZoneInfo | None = None) -> dict[str, Any]:
    """The record as the API serves it; `naive_tz` renders times as local wall time."""
    lesson_id, title = catalog.lessons[catalog.lesson_of(rec.lesson, rec.member)]
    member = catalog.members[rec.member]
    if naive_tz is None:
        updated, created = iso_z(rec.updated_ms), iso_z(rec.event_ms)
    else:
        updated, created = iso_local(rec.updated_ms, naive_tz), iso_local(rec.event_ms, naive_tz)
    return {
        "CourseLessonId": lesson_id,
        "CourseLessonTitle": title,
        "CourseMemberId": member.id,
        "CourseMemberCoworkerFullName": member.person.full_name,
        "CourseMemberCoworkerCompanyName": member.company,
        "CourseMemberCoworkerTeamNames": member.teams,
        "Id": rec.id,
        "UpdatedOn": updated,
        "CreatedOn": created,
        "UniqueId": rec.unique_id,
        "UpdatedBy": rec.updated_by,
        "IsNew": rec.is_new,
        "SystemId": rec.system_id,
        "ToStringText": f"{title} — {member.person.full_name}",
        "LocalizationDetails": None,
        "CustomFields": None if rec.custom_salt is None else _custom_fields(rec.custom_salt),
    }


def encode_member(member: Member, catalog: Catalog) -> dict[str, Any]:
    """A CourseMember as the API serves it."""
    course = catalog.nexudus_courses[member.course]
    return {
        "Id": member.id,
        "CoworkerId": member.coworker_id,
        "CoworkerFullName": member.person.full_name,
        "CoworkerEmail": member.person.email,
        "CourseId": course.id,
        "CourseTitle": course.title,
        "UniqueId": f"cm-{member.id}",
        "ToStringText": f"{member.person.full_name} — {course.title}",
    }


def listed_members(catalog: Catalog, *, removed: bool) -> list[dict[str, Any]]:
    """Every enrolment the endpoint lists today, in Id order; when `removed`, MEMBER_REMOVED is gone."""
    gone = catalog.members[MEMBER_REMOVED].id if removed else None
    return [encode_member(m, catalog) for m in sorted(catalog.members, key=lambda m: m.id) if m.id != gone]
