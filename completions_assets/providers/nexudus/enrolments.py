"""Who and which course behind a completed lesson: its `CourseMemberId` looked up in the
account's `nexudus_course_members` snapshot. A member missing from the snapshot (removed from
its course, enrolled after the snapshot, or no snapshot at all) leaves the row's columns null."""

import pyarrow as pa
import pyarrow.compute as pc

MEMBERS = "nexudus_course_members"  # the snapshot asset (one per connection)
# snapshot column -> the column it adds to a raw day
ADDED = {"coworker_id": "member_coworker_id", "course_id": "member_course_id", "course_title": "member_course_title"}
_TYPES = {"member_coworker_id": pa.int64(), "member_course_id": pa.int64(), "member_course_title": pa.string()}
_ROW = "__row"


def with_enrolments(raw: pa.Table, members: pa.Table | None) -> pa.Table:
    """`raw` with the ADDED columns of each row's enrolment, in the same row order."""
    if members is None or not raw.num_rows:
        return _with_nulls(raw)
    # One row per id, or a repeated id in the snapshot would repeat completions.
    unique = members.group_by("id", use_threads=False).aggregate([(name, "first") for name in ADDED])
    unique = unique.select(["id", *[f"{name}_first" for name in ADDED]]).rename_columns(["__member", *ADDED.values()])
    keys = raw.select(["course_member_id"]).append_column(_ROW, pa.array(range(raw.num_rows), pa.int64()))
    joined = keys.join(unique, "course_member_id", "__member", join_type="left outer", use_threads=False)
    joined = joined.take(pc.sort_indices(joined[_ROW]))
    for name in ADDED.values():
        raw = raw.append_column(name, joined[name].cast(_TYPES[name]))
    return raw


def _with_nulls(raw: pa.Table) -> pa.Table:
    for name, type_ in _TYPES.items():
        raw = raw.append_column(name, pa.nulls(raw.num_rows, type_))
    return raw


def unresolved(enriched: pa.Table) -> pa.Array:
    """Enrolment ids of the rows the snapshot did not resolve."""
    mask = pc.and_(pc.is_valid(enriched["course_member_id"]), pc.is_null(enriched["member_coworker_id"]))
    return enriched.filter(mask)["course_member_id"].combine_chunks()
