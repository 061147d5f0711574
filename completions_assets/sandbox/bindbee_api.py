"""`GET /api/lms/v1/completions`: auth, rate limit headers and cursor pages."""

import base64
import binascii
import bisect
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping

from . import bindbee_query
from .data import Dataset
from .ratelimit import Decision, SlidingWindowLimiter
from .reply import Reply, json_reply

PATH = "/api/lms/v1/completions"
RATE_LIMIT = 200  # requests per minute per connector token
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_CACHE_SIZE = 256
_URLSAFE = str.maketrans("-_", "+/")


def encode_cursor(record_id: str) -> str:
    return base64.b64encode(record_id.encode()).decode()


def decode_cursor(cursor: str) -> str | None:
    """The record id a cursor points at, or None when it is not one of ours."""
    standard = cursor.translate(_URLSAFE) + "=" * (-len(cursor) % 4)
    try:
        text = base64.b64decode(standard, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if _UUID.match(text) else None


class BindbeeApi:
    def __init__(
        self, dataset: Dataset, api_key: str, connectors: Mapping[str, str], *, ignore_expand: tuple[str, ...] = ()
    ) -> None:
        self._data = dataset
        self._ignore_expand = frozenset(ignore_expand)  # connections whose LMS serves ids only
        self._api_key = api_key  # the organisation's, shared by every connector token
        self._connectors = dict(connectors)  # connector token -> connection
        self._limiter = SlidingWindowLimiter(((60.0, RATE_LIMIT),))
        self._cache: OrderedDict[tuple, list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def identify(self, headers: Mapping[str, str]) -> str | None:
        """The connection of the request's connector token, when its API key is good."""
        if not self._key_ok(headers):
            return None
        return self._connectors.get(headers.get("x-connector-token") or "")

    def handle(
        self,
        connection: str | None,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        *,
        enforce: bool,
        repeat_cursor: bool,
        revoked: bool = False,
        withheld: frozenset[int] = frozenset(),
    ) -> Reply:
        """A page of completions; `withheld` positions are left out (a connector whose sync failed)."""
        if connection is None:
            return self._denied(headers)
        if revoked:
            # The token was valid but the customer's link is gone (RELINK_NEEDED).
            return json_reply(401, {"detail": "Invalid connector token"}, {"WWW-Authenticate": "Bearer"})
        decision = self._limiter.hit(connection, enforce=enforce)  # 200/min per connector token
        if not decision.allowed:
            detail = (
                f"Rate limit exceeded: {RATE_LIMIT} requests per minute. Retry after {decision.retry_after_s} seconds."
            )
            return json_reply(429, {"detail": detail}, {"Retry-After": str(decision.retry_after_s)})
        options, errors = bindbee_query.parse(params)
        if errors:
            return json_reply(422, {"detail": errors})
        reply = self._page(connection, options, repeat_cursor, withheld)
        if reply.status < 300:
            reply.headers.update(_rate_headers(decision))
        return reply

    def _key_ok(self, headers: Mapping[str, str]) -> bool:
        scheme, _, key = (headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and key.strip() == self._api_key

    def _denied(self, headers: Mapping[str, str]) -> Reply:
        """Why a request belongs to no connection: bad key 401, no token 422, unknown token 403."""
        if not self._key_ok(headers):
            return json_reply(401, {"detail": "Invalid or missing API key"}, {"WWW-Authenticate": "Bearer"})
        if headers.get("x-connector-token") is None:
            error = {"type": "missing", "loc": ["header", "x-connector-token"], "msg": "Field required", "input": None}
            return json_reply(422, {"detail": [error]})
        return json_reply(403, {"detail": "Invalid connector token for this category"})

    def _matching(self, connection: str, filters: tuple) -> list[int]:
        """Positions (id order) matching the filters, visibility aside; cached per query."""
        key = (connection, filters)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        table = self._data.table("bindbee", connection)
        bounds = bindbee_query.completed_bounds(filters)
        candidates = table.event_positions(*bounds) if bounds else range(len(table.ids))
        others = tuple(f for f in filters if not f[0].startswith("completed_at"))
        if others:
            match = bindbee_query.matcher(others, self._data.catalog_of(connection))
            candidates = [p for p in candidates if match(table.records[p])]
        positions = sorted(candidates)
        with self._lock:
            self._cache[key] = positions
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return positions

    def _page(
        self, connection: str, options: bindbee_query.Options, repeat_cursor: bool, withheld: frozenset[int]
    ) -> Reply:
        table = self._data.table("bindbee", connection)
        matching = self._matching(connection, options.filters)
        start = 0
        if options.cursor is not None:
            cursor_id = decode_cursor(options.cursor)
            if cursor_id is None:
                return json_reply(400, {"detail": "Invalid cursor"})
            start = bisect.bisect_left(matching, bisect.bisect_left(table.ids, cursor_id))
        visible_n, deleted = self._data.visible_count("bindbee", connection), table.deleted
        page: list[int] = []
        for pos in matching[start : start + options.page_size + 1 + len(deleted) + len(withheld)]:
            if pos >= visible_n or len(page) > options.page_size:
                break
            if pos not in deleted and pos not in withheld:
                page.append(pos)
        items, following = page[: options.page_size], page[options.page_size :]
        cursor: str | None = encode_cursor(table.ids[following[0]]) if following else None
        if repeat_cursor and items:
            # Fault knob: the cursor never advances past this page.
            cursor = options.cursor or encode_cursor(table.ids[items[0]])
        variant = options.variant
        if connection in self._ignore_expand:
            variant = (*variant[:2], ())
        parts = self._data.encoded("bindbee", items, variant, connection=connection)
        body = b"".join(
            (
                b'{"cursor":',
                json.dumps(cursor).encode(),
                b',"page_size":',
                str(len(items)).encode(),
                b',"items":[',
                b",".join(parts),
                b"]}",
            )
        )
        return Reply(200, body, {"Content-Type": "application/json"})


def _rate_headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_epoch_s),
    }
