"""Both providers' raw rows in one schema (SPEC section 7), deduplicated."""

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.lms.schema import LMS_SCHEMA

# Days, hours, minutes and (fractional) seconds; years and months have no fixed
# length in seconds, so a duration using them is refused rather than guessed.
ISO_DURATION = (
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


class UnifyError(ValueError):
    """A raw value cannot be expressed in the unified schema."""


def duration_seconds(durations: pa.Array) -> pa.Array:
    """ISO 8601 durations (`PT1H15M`) as whole seconds (int64), nulls kept."""
    parts = pc.extract_regex(durations, ISO_DURATION)
    unparsed = pc.and_(pc.is_valid(durations), pc.is_null(parts))
    if pc.any(unparsed).as_py():
        bad = pc.filter(durations, unparsed)[0].as_py()
        raise UnifyError(f"time_duration {bad!r} is not an ISO 8601 duration of W/D/H/M/S")
    total = pa.scalar(0.0)
    for unit, seconds in _UNIT_SECONDS.items():
        text = pc.struct_field(parts, unit)
        value = pc.if_else(pc.equal(text, ""), "0", text).cast(pa.float64())
        total = pc.add(total, pc.multiply(value, float(seconds)))
    return pc.floor(total).cast(pa.int64())


def _constant(value: object, type_: pa.DataType, rows: int) -> pa.Array:
    return pa.array([value] * rows, type=type_) if value is not None else pa.nulls(rows, type_)


def unify_bindbee(raw: pa.Table, day: dt.date) -> pa.Table:
    rows = raw.num_rows
    return pa.Table.from_pydict(
        {
            "provider": _constant("bindbee", pa.string(), rows),
            "completion_id": raw["id"],
            "user_id": raw["user"],
            "user_name": pa.nulls(rows, pa.string()),
            "course_id": raw["course"],
            "content_id": raw["content"],
            "content_title": pa.nulls(rows, pa.string()),
            "started_at": raw["started_at"],
            "completed_at": raw["completed_at"],
            "duration_seconds": duration_seconds(raw["time_duration"].combine_chunks()),
            "score": raw["score"],
            "grade": raw["grade"],
            "modified_at": raw["modified_at"],
            "completion_date": _constant(day, pa.date32(), rows),
        },
        schema=LMS_SCHEMA,
    )


def unify_nexudus(raw: pa.Table, day: dt.date) -> pa.Table:
    rows = raw.num_rows
    return pa.Table.from_pydict(
        {
            "provider": _constant("nexudus", pa.string(), rows),
            "completion_id": raw["id"].cast(pa.string()),
            # The list endpoint exposes no person id: the enrolment id stands in.
            "user_id": raw["course_member_id"].cast(pa.string()),
            "user_name": raw["course_member_coworker_full_name"],
            "course_id": pa.nulls(rows, pa.string()),
            "content_id": raw["course_lesson_id"].cast(pa.string()),
            "content_title": raw["course_lesson_title"],
            "started_at": pa.nulls(rows, LMS_SCHEMA.field("started_at").type),
            "completed_at": raw["created_on"],
            "duration_seconds": pa.nulls(rows, pa.int64()),
            "score": pa.nulls(rows, pa.float64()),
            "grade": pa.nulls(rows, pa.string()),
            "modified_at": raw["updated_on"],
            "completion_date": _constant(day, pa.date32(), rows),
        },
        schema=LMS_SCHEMA,
    )


def keep_latest(table: pa.Table, keys: list[str], version: str) -> pa.Table:
    """One row per `keys`: the one with the greatest `version` (nulls lose)."""
    if table.num_rows == 0:
        return table
    order = [(key, "ascending", "at_end") for key in keys] + [(version, "descending", "at_end")]
    ranked = table.take(pc.sort_indices(table, sort_keys=order))
    first = pa.array([True] + [False] * (ranked.num_rows - 1))
    for key in keys:
        column = ranked[key].combine_chunks()
        changed = pc.not_equal(column[1:], column[:-1]).fill_null(True)
        first = pc.or_(first, pa.concat_arrays([pa.array([True]), changed]))
    return ranked.filter(first)


def merge_day(bindbee: pa.Table, nexudus: pa.Table, day: dt.date) -> pa.Table:
    """The unified, deduplicated rows of `day`, in a stable order."""
    unified = pa.concat_tables([unify_bindbee(bindbee, day), unify_nexudus(nexudus, day)])
    unique = keep_latest(unified, ["provider", "completion_id"], "modified_at")
    order = [("completed_at", "ascending"), ("provider", "ascending"), ("completion_id", "ascending")]
    return unique.take(pc.sort_indices(unique, sort_keys=order))
