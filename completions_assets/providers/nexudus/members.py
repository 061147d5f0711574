"""Nexudus `GET /api/content/coursemembers`: the account's enrolments, one full snapshot.

A completed lesson names its enrolment (`CourseMemberId`) but neither the person behind it
nor the course; a `CourseMember` has both. The walk uses the Nexudus client's session (auth,
pacing, retries) and the shared page walker.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.http.pagination import Page, PageNumberPaginator, iter_pages
from completions_assets.http.session import RequestStats
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.records import RecordLocator, column, parse_batches

PATH = "/api/content/coursemembers"
# E-mail addresses and other fields the endpoint serves are left out: only what the merge uses is kept.
MEMBERS_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("coworker_id", pa.int64()),
        ("course_id", pa.int64()),
        ("course_title", pa.string()),
        ("coworker_full_name", pa.string()),
    ]
)
_FIELDS = {"id": "Id", "coworker_id": "CoworkerId", "course_id": "CourseId", "course_title": "CourseTitle"}
_FIELDS["coworker_full_name"] = "CoworkerFullName"


@dataclass(frozen=True)
class MembersSnapshot:
    table: pa.Table  # MEMBERS_SCHEMA, sorted by id
    reported_total: int | None  # TotalItems of the first page
    stats: RequestStats


def parse_members(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
    """CourseMember records as a MEMBERS_SCHEMA table; unknown fields are dropped."""
    arrays = [
        column([r.get(_FIELDS[f.name]) for r in records], f.type, _FIELDS[f.name], locator, required=f.name == "id")
        for f in MEMBERS_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=MEMBERS_SCHEMA)


def fetch_members(client: ProviderClient) -> MembersSnapshot:
    """Every enrolment of the client's account, paged by Id.

    Raises:
        ProviderError: a request failed for good, or the pages do not add up (a loop).
    """
    client.name_requests("course members")
    params = {"page": "1", "size": str(client.settings.page_size), "orderBy": "Id", "dir": "1"}
    stats = RequestStats()
    first: list[int | None] = []

    def pages() -> Iterator[Page]:
        for page in iter_pages(client.session, PATH, params, PageNumberPaginator(client.provider.name), stats):
            if not first:
                total = page.payload.get("TotalItems")
                first.append(total if isinstance(total, int) and not isinstance(total, bool) else None)
            yield page

    table = pa.concat_tables(parse_batches(pages(), parse_members, client.provider.name))
    table = table.take(pc.sort_indices(table, sort_keys=[("id", "ascending")]))
    return MembersSnapshot(table=table, reported_total=first[0] if first else None, stats=stats)
