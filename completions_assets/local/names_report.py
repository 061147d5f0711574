"""Who completed what, from `lms_completions`: a few named rows per provider, and one person's
completions across courses joined by `person_id` (for `make demo`)."""

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.storage import ParquetStorage

COLUMNS = ["provider", "connection", "person_id", "user_name", "course_title", "content_title"]


def merged_days(storage: ParquetStorage, days: Sequence[dt.date]) -> pa.Table:
    tables = [t for t in (storage.read("lms_completions", day) for day in days) if t is not None]
    return pa.concat_tables(tables) if tables else pa.table({name: pa.array([], pa.string()) for name in COLUMNS})


def who_completed_what(table: pa.Table, *, samples: int = 3) -> str:
    """Sample rows per provider, then per provider the person with the most courses and their courses."""
    lines = ["Who completed what (lms_completions):"]
    for provider in sorted(pc.unique(table["provider"]).to_pylist()):
        mine = table.filter(pc.equal(table["provider"], provider))
        named = mine.filter(pc.is_valid(mine["user_name"])).select(COLUMNS).slice(0, samples)
        lines += [f"  {_row(row)}" for row in named.to_pylist()]
        lines += _one_person(mine)
    return "\n".join(lines)


def _row(row: dict) -> str:
    where = f"{row['provider']}:{row['connection']}"
    return f"{where:<18} person {row['person_id'] or '-':<38} {row['user_name'] or '-':<24} " + (
        f"{row['course_title'] or '-'} / {row['content_title'] or '-'}"
    )


def _one_person(rows: pa.Table) -> list[str]:
    known = rows.filter(pc.and_(pc.is_valid(rows["person_id"]), pc.is_valid(rows["course_title"])))
    if not known.num_rows:
        return []
    keys = ["connection", "person_id"]
    courses = known.group_by(keys).aggregate([("course_title", "count_distinct")])
    best = courses.take(
        pc.sort_indices(courses, [("course_title_count_distinct", "descending"), *((k, "ascending") for k in keys)])
    )
    connection, person = best["connection"][0].as_py(), best["person_id"][0].as_py()
    theirs = known.filter(pc.and_(pc.equal(known["connection"], connection), pc.equal(known["person_id"], person)))
    name = theirs["user_name"].drop_null()
    per_course = theirs.group_by("course_title").aggregate([([], "count_all")]).sort_by("course_title")
    who = f"{name[0].as_py() if len(name) else 'no name'}, {rows['provider'][0].as_py()}:{connection}"
    head = f"  -> one person_id, {per_course.num_rows} courses: {person} ({who})"
    return [head] + [f"       {r['course_title']}: {r['count_all']}" for r in per_course.to_pylist()]
