"""Bindbee LMS completion records: generation and their JSON form."""

import dataclasses
import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .event_times import day_events, day_rng, uuid7, visible_from
from .timeutil import date_start_ms, iso_duration, iso_z

GRADES = ("A", "B", "C", "D", "F", "PASS", "FAIL", "-")
_DURATIONS = (4500, 2700, 30, 900, 3600, 1230, 75, 93_600)  # PT1H15M, PT45M, PT30S, ...
_SOURCES = ("Workday Learning", "Cornerstone OnDemand", "Docebo", "SAP SuccessFactors")
EXPAND_FIELDS: dict[str, tuple[str, ...]] = {
    "user": ("remote_id", "first_name", "last_name", "email_address"),
    "course": ("remote_id", "name", "status"),
    "content": ("remote_id", "title", "type", "course"),
}
# relation -> requested fields (None: the default set)
Expand = Mapping[str, tuple[str, ...] | None]


@dataclass(frozen=True, slots=True)
class BindbeeRecord:
    id: str
    event_ms: int
    visible_ms: int
    remote_id: str
    user: int
    course: int | None
    content: int | None
    score: float | int | None
    grade: str | None
    started_ms: int | None
    duration_s: int | None
    salt: int
    modified_ms: int | None = None  # set when the record was corrected at the source (Dataset.modify)


def _score(rng: random.Random) -> float | int | None:
    roll = rng.random()
    if roll < 0.15:
        return None
    return rng.randint(0, 100) if roll < 0.6 else round(rng.uniform(0, 100), 1)


def _duration(rng: random.Random) -> int | None:
    if rng.random() < 0.1:
        return None
    return rng.choice(_DURATIONS) if rng.random() < 0.6 else rng.randint(5, 7200)


def _score_grade(rng: random.Random) -> tuple[float | int | None, str | None]:
    score = _score(rng)
    kind = rng.random()
    if kind < 0.06:
        return score, None
    if kind < 0.11:
        return score, "-"  # the source value could not be mapped
    if kind < 0.35 or score is None:
        return score, rng.choice(("PASS", "PASS", "PASS", "FAIL"))
    return score, _letter(score)


def _letter(score: float) -> str:
    for floor, letter in ((90, "A"), (80, "B"), (70, "C"), (60, "D")):
        if score >= floor:
            return letter
    return "F"


def _relations(rng: random.Random, catalog: Catalog) -> tuple[int | None, int | None]:
    content = rng.randrange(len(catalog.contents))
    roll = rng.random()
    if roll < 0.7:
        return content % len(catalog.courses), content
    if roll < 0.85:
        return rng.randrange(len(catalog.courses)), None
    return None, content


def _record(rng: random.Random, catalog: Catalog, event: int, late: float, remote_id: str) -> BindbeeRecord:
    visible = visible_from(rng, event, late)
    course, content = _relations(rng, catalog)
    score, grade = _score_grade(rng)
    duration = _duration(rng)
    started = None
    if rng.random() > 0.05:
        started = event - (duration if duration is not None else rng.randint(60, 10_800)) * 1000
    return BindbeeRecord(
        uuid7(visible, rng),
        event,
        visible,
        remote_id,
        rng.randrange(len(catalog.people)),
        course,
        content,
        score,
        grade,
        started,
        duration,
        rng.getrandbits(32),
    )


def corrected(rec: BindbeeRecord, now_ms: int) -> BindbeeRecord:
    """The record as its source LMS corrected it: another grade and score, modified now."""
    grade = GRADES[(GRADES.index(rec.grade) + 1) % len(GRADES)] if rec.grade in GRADES else "PASS"
    score = 0 if rec.score is None else (int(rec.score) + 37) % 101
    return dataclasses.replace(rec, grade=grade, score=score, modified_ms=max(now_ms, rec.visible_ms + 1))


def generate_day(seed: int, day: dt.date, count: int, catalog: Catalog, late: float) -> list[BindbeeRecord]:
    rng = day_rng(seed, "bindbee", day)
    events = day_events(rng, date_start_ms(day), count)
    base = day.toordinal() * 100_000
    return [_record(rng, catalog, event, late, str(base + i)) for i, event in enumerate(events)]


def _raw_data(rec: BindbeeRecord, catalog: Catalog) -> dict[str, Any]:
    rng = random.Random(rec.salt)
    return {
        "source_system": rng.choice(_SOURCES),
        "source_id": rec.remote_id,
        "status": rng.choice(("completed", "passed", "Completed")),
        "learner": {
            "name": catalog.people[rec.user].full_name,
            "locale": rng.choice(("en-GB", "de-DE", "zh-CN", "es-ES")),
        },
        "attempts": rng.randint(1, 4),
        "certificate_issued": rng.random() < 0.4,
    }


def _custom_fields(rec: BindbeeRecord) -> dict[str, Any]:
    rng = random.Random(rec.salt + 1)
    if rng.random() < 0.2:
        return {}
    year = rng.randint(1985, 2023)
    return {
        "category_group": rng.choice(("REG", "TEMP", "CONTRACT")),
        "hire_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00",
        "nationality": rng.choice(("USA", "DEU", "ESP", "CHN", "SWE")),
        "cost_center": f"CC-{rng.randint(100, 999)}",
    }


def _expanded(relation: str, index: int, catalog: Catalog, fields: tuple[str, ...] | None) -> dict[str, Any]:
    if relation == "user":
        person = catalog.people[index]
        full = {
            "id": catalog.user_ids[index],
            "remote_id": f"EMP-{10_000 + index}",
            "first_name": person.first_name,
            "last_name": person.last_name,
            "email_address": person.email,
        }
    elif relation == "course":
        course = catalog.courses[index]
        full = {"id": course.id, "remote_id": course.remote_id, "name": course.name, "status": "ACTIVE"}
    else:
        item = catalog.contents[index]
        full = {
            "id": item.id,
            "remote_id": item.remote_id,
            "title": item.title,
            "type": item.type,
            "course": item.course,
        }
    wanted = EXPAND_FIELDS[relation] if fields is None else fields
    return {"id": full["id"], **{name: full[name] for name in wanted}}


def encode(
    rec: BindbeeRecord, catalog: Catalog, *, raw: bool = False, custom: bool = False, expand: Expand | None = None
) -> dict[str, Any]:
    """The record as the API serves it for these query options."""
    expand = expand or {}
    refs = {"user": rec.user, "course": rec.course, "content": rec.content}
    ids = {"user": catalog.user_ids, "course": catalog.course_ids, "content": catalog.content_ids}
    rel: dict[str, Any] = {}
    for name, index in refs.items():
        if index is None:
            rel[name] = None  # a null relation stays null, expanded or not
        elif name in expand:
            rel[name] = _expanded(name, index, catalog, expand[name])
        else:
            rel[name] = ids[name][index]
    return {
        "id": rec.id,
        "remote_id": rec.remote_id,
        "modified_at": iso_z(rec.visible_ms if rec.modified_ms is None else rec.modified_ms),
        "raw_data": _raw_data(rec, catalog) if raw else None,
        "custom_fields": _custom_fields(rec) if custom else None,
        **rel,
        "score": rec.score,
        "grade": rec.grade,
        "started_at": None if rec.started_ms is None else iso_z(rec.started_ms),
        "completed_at": iso_z(rec.event_ms),
        "time_duration": None if rec.duration_s is None else iso_duration(rec.duration_s),
    }
