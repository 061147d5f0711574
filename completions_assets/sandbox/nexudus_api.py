"""`GET /api/content/coursecompletedlessons`: bearer auth, throttling, page/size paging."""

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from . import nexudus_members, nexudus_query
from .catalog import Catalog
from .data import Dataset
from .nexudus_auth import TokenStore
from .nexudus_data import NexudusRecord
from .ratelimit import SlidingWindowLimiter
from .reply import Reply, json_reply

PATH = "/api/content/coursecompletedlessons"
# 1 request per 100 ms, 120 per minute, 5,000 per hour (NOTES.md).
THROTTLE_RULES = ((0.1, 1), (60.0, 120), (3600.0, 5000))
_JSON = "application/json; charset=utf-8"
_CACHE_SIZE = 256
_SortKey = Callable[[NexudusRecord, Catalog], Any]
ORDER_KEYS: dict[str, _SortKey] = {
    "Id": lambda r, c: r.id,
    "CreatedOn": lambda r, c: r.event_ms,
    "UpdatedOn": lambda r, c: r.updated_ms,
    "CourseLessonId": lambda r, c: c.lessons[c.lesson_of(r.lesson, r.member)][0],
    "CourseLessonTitle": lambda r, c: c.lessons[c.lesson_of(r.lesson, r.member)][1],
    "CourseMemberId": lambda r, c: c.members[r.member].id,
    "CourseMemberCoworkerFullName": lambda r, c: c.members[r.member].person.full_name,
}
_ORDER_NAMES = {name.lower(): name for name in ORDER_KEYS}


def _failure(status: int, message: str) -> Reply:
    body = {
        "Value": None,
        "WasSuccessful": False,
        "Message": message,
        "Errors": [{"AttemptedValue": None, "Message": message, "PropertyName": None}],
    }
    return json_reply(status, body, content_type=_JSON)


class NexudusApi:
    def __init__(self, dataset: Dataset, tokens: TokenStore, filter_tz: str) -> None:
        self._data = dataset
        self._tokens = tokens
        self._tz = ZoneInfo(filter_tz)
        self._limiter = SlidingWindowLimiter(THROTTLE_RULES)
        # (connection, query) -> (matching positions, (visible count, deletion version), live positions)
        self._cache: OrderedDict[tuple, tuple[list[int], tuple[int, int], list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def identify(self, headers: Mapping[str, str]) -> str | None:
        """The connection (account) whose credentials the request carries, if any."""
        return self._tokens.principal(headers.get("Authorization"))

    def handle(
        self,
        connection: str | None,
        params: Mapping[str, str],
        *,
        enforce: bool,
        repeat_page: bool,
        revoked: bool = False,
        members: bool = False,
        withheld: frozenset[int] = frozenset(),
    ) -> Reply:
        """A page of completed lessons, or of `members` (GET /api/content/coursemembers); `withheld`
        positions are left out, from the records and from TotalItems alike."""
        if connection is None or revoked:
            body = {"Message": "Authorization has been denied for this request."}
            return json_reply(401, body, {"WWW-Authenticate": 'Bearer realm="Nexudus"'}, content_type=_JSON)
        if enforce:
            # Each account has its own budget.
            decision = self._limiter.hit(connection)
            if not decision.allowed:
                # Nexudus throttles with 409 (not 429), an empty body and Retry-After.
                return Reply(409, b"", {"Retry-After": str(decision.retry_after_s)})
        try:
            if members:
                return nexudus_members.page(self._data.course_members(connection), params)
            options = nexudus_query.parse(params, self._tz, _ORDER_NAMES)
        except nexudus_query.QueryError as exc:
            return _failure(400, str(exc))
        return self._page(connection, options, repeat_page, withheld)

    def _live(self, connection: str, options: nexudus_query.Options) -> list[int]:
        """Visible, undeleted matching positions in the requested order.

        Offset paging rereads this list on every page, so it is cached per query
        and recomputed only when visibility or deletions change.
        """
        table = self._data.table("nexudus", connection)
        # Corrections change the fields filters and orders read: a new revision is a new query.
        key = (connection, options.filters, options.order_field, options.descending, table.revision)
        stamp = (self._data.visible_count("nexudus", connection), table.version)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
        if entry is None:
            entry = (self._matching(connection, options), (-1, -1), [])
        if entry[1] != stamp:
            full = entry[0]
            live = full if stamp[0] == len(table.ids) and not table.deleted else table.live(full, stamp[0])
            entry = (full, stamp, live)
            with self._lock:
                self._cache[key] = entry
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return entry[2]

    def _matching(self, connection: str, options: nexudus_query.Options) -> list[int]:
        """Positions matching the filters in the requested order, visibility aside."""
        table, catalog = self._data.table("nexudus", connection), self._data.catalog_of(connection)
        created = dict(options.filters).get("event_ms")
        candidates = table.event_positions(*created) if created else range(len(table.ids))
        match = nexudus_query.matcher(options.filters, catalog)
        sort_key = ORDER_KEYS[options.order_field]
        records = table.records
        positions = sorted(
            (p for p in candidates if match(records[p])), key=lambda p: (sort_key(records[p], catalog), p)
        )
        if options.descending:
            positions.reverse()
        return positions

    def _page(
        self, connection: str, options: nexudus_query.Options, repeat_page: bool, withheld: frozenset[int]
    ) -> Reply:
        live = self._live(connection, options)
        if withheld:
            live = [pos for pos in live if pos not in withheld]
        page = 1 if repeat_page else options.page  # fault knob: `page` ignored
        offset = (page - 1) * options.size
        items = live[offset : offset + options.size]
        total, size = len(live), options.size
        total_pages = -(-total // size)
        meta = {
            "CurrentPageSize": size,
            "CurrentPage": page,
            "CurrentOrderField": options.order_field,
            "CurrentSortDirection": -1 if options.descending else 1,
            "FirstItem": offset + 1 if items else 0,
            "HasNextPage": repeat_page or page < total_pages,
            "HasPreviousPage": page > 1,
            "LastItem": offset + len(items) if items else 0,
            "PageNumber": page,
            "PageSize": size,
            "TotalItems": total,
            "TotalPages": total_pages,
        }
        parts = self._data.encoded("nexudus", items, connection=connection)
        body = b"".join((b'{"Records":[', b",".join(parts), b"],", json.dumps(meta).encode()[1:]))
        return Reply(200, body, {"Content-Type": _JSON})
