"""`GET /api/content/coursemembers`: the account's enrolments (CourseMember), page/size paging by Id."""

import json
from collections.abc import Mapping
from typing import Any

from .nexudus_query import DEFAULT_SIZE, MAX_SIZE, QueryError, _int
from .reply import Reply

PATH = "/api/content/coursemembers"
_JSON = "application/json; charset=utf-8"


def page(members: list[dict[str, Any]], params: Mapping[str, str]) -> Reply:
    """One page of the account's `members` (in Id order); only `orderBy=Id` (the default), ascending or descending, is served.

    Raises:
        QueryError: a parameter the API refuses.
    """
    number, size = _int(params, "page", 1), min(_int(params, "size", DEFAULT_SIZE), MAX_SIZE)
    if (params.get("orderBy") or "Id").lower() != "id":
        raise QueryError(f"Cannot order by '{params['orderBy']}'.")
    records = list(members)
    if (params.get("dir") or "1").strip().lower() in {"-1", "0", "descending", "desc"}:
        records.reverse()
    items = records[(number - 1) * size : number * size]
    total_pages = -(-len(records) // size)
    meta = {
        "Records": items,
        "CurrentPage": number,
        "CurrentPageSize": size,
        "HasNextPage": number < total_pages,
        "HasPreviousPage": number > 1,
        "PageNumber": number,
        "PageSize": size,
        "TotalItems": len(records),
        "TotalPages": total_pages,
    }
    return Reply(200, json.dumps(meta, ensure_ascii=False).encode(), {"Content-Type": _JSON})
