"""Bindbee's expanded relations: the `expand` value that asks for them, and the names they carry.

A relation comes back as an id, or as an object (`{"id": ..., "first_name": ...}`) when the LMS
honours `expand`; a connector that ignores it serves ids, whose names then stay null.
"""

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from completions_assets.providers.records import RecordLocator, column

# relation -> the fields asked for (only those used); e-mail addresses are personal data, asked only on request
FIELDS = {"user": ("first_name", "last_name"), "course": ("name",), "content": ("title",)}
EMAIL = "email_address"
# raw column -> (relation, field); user_name is built from first and last name
NAME_COLUMNS = {"user_email": ("user", EMAIL), "course_name": ("course", "name"), "content_title": ("content", "title")}


def expand_value(*, include_email: bool) -> str:
    """`user[first_name,last_name],course[name],content[title]`, with `email_address` when asked."""
    fields = {**FIELDS, "user": (*FIELDS["user"], EMAIL)} if include_email else FIELDS
    return ",".join(f"{relation}[{','.join(names)}]" for relation, names in fields.items())


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _full_name(user: Any) -> str | None:
    parts = [_field(user, "first_name"), _field(user, "last_name")]
    text = " ".join(part for part in parts if isinstance(part, str) and part)
    return text or None  # an unexpanded or nameless user stays null


def name_columns(
    records: Sequence[dict[str, Any]], locator: RecordLocator, *, include_email: bool
) -> dict[str, pa.Array]:
    """The raw name columns of these records: null where a relation came back as an id."""
    columns = {"user_name": column([_full_name(r.get("user")) for r in records], pa.string(), "user", locator)}
    for name, (relation, field) in NAME_COLUMNS.items():
        if name == "user_email" and not include_email:
            columns[name] = pa.nulls(len(records), pa.string())  # never kept, even if sent
            continue
        columns[name] = column(
            [_field(r.get(relation), field) for r in records], pa.string(), f"{relation}.{field}", locator
        )
    return columns
