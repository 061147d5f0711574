"""One page iterator with two small paginators: Bindbee's cursor and Nexudus's page number.

A paginator answers two questions about a response: which records it holds
(checking the documented shape) and the params of the next page, or None.
Pages are only walked here; turning records into Arrow is the provider's parser.
`iter_pages` drives either one, so no endpoint has a hand-written loop; a
repeated cursor or page and the page cap raise PaginationLoopError.
"""

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from completions_assets.http.errors import PaginationLoopError, PayloadError
from completions_assets.http.redaction import Label, PageLabel
from completions_assets.http.session import HttpSession, RequestStats

DEFAULT_MAX_PAGES = 100_000


@dataclass(frozen=True)
class Page:
    number: int  # 1-based position in this walk
    label: PageLabel  # "page N (GET sanitised-url)", for error messages
    payload: dict[str, Any]
    records: list[dict[str, Any]]


class Paginator(Protocol):
    provider: str

    def records(self, payload: Any, params: Mapping[str, str], label: Label) -> list[dict[str, Any]]: ...

    def next_params(
        self, payload: dict[str, Any], params: Mapping[str, str], label: Label
    ) -> dict[str, str] | None: ...


def _record_list(provider: str, payload: Any, key: str, label: Label) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        raise PayloadError(provider, f"{label}: expected a JSON object, got {type(payload).__name__}")
    items = payload.get(key)
    if not isinstance(items, list):
        found = "missing" if key not in payload else f"a {type(items).__name__}"
        raise PayloadError(provider, f"{label}: field {key!r} is {found}, expected a list of records")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise PayloadError(provider, f"{label}, record {index}: expected an object, got {type(item).__name__}")
    return items


class CursorPaginator:
    """Follows `cursor` until it is null, never stopping on a short page."""

    def __init__(self, provider: str, *, items_key: str = "items", cursor_key: str = "cursor") -> None:
        self.provider = provider
        self._items_key = items_key
        self._cursor_key = cursor_key
        self._seen: set[str] = set()

    def records(self, payload: Any, params: Mapping[str, str], label: Label) -> list[dict[str, Any]]:
        return _record_list(self.provider, payload, self._items_key, label)

    def next_params(self, payload: dict[str, Any], params: Mapping[str, str], label: Label) -> dict[str, str] | None:
        if self._cursor_key not in payload:
            raise PayloadError(self.provider, f"{label}: field {self._cursor_key!r} is missing")
        cursor = payload[self._cursor_key]
        if cursor is None:
            return None
        if not isinstance(cursor, str) or not cursor:
            raise PayloadError(self.provider, f"{label}: field {self._cursor_key!r} is not a string: {cursor!r:.80}")
        sent = params.get(self._cursor_key)
        if sent is not None:
            self._seen.add(sent)
        if cursor in self._seen:
            raise PaginationLoopError(self.provider, f"{label}: cursor {cursor[:60]!r} was already followed")
        self._seen.add(cursor)
        return {**params, self._cursor_key: cursor}


class PageNumberPaginator:
    """Nexudus paging: `page` from 1 while `HasNextPage`, checking the page it got back."""

    def __init__(self, provider: str, *, id_key: str = "Id") -> None:
        self.provider = provider
        self._id_key = id_key
        self._previous_ids: list[Any] | None = None

    def records(self, payload: Any, params: Mapping[str, str], label: Label) -> list[dict[str, Any]]:
        if isinstance(payload, dict) and payload.get("WasSuccessful") is False:
            message = str(payload.get("Message") or "")[:200]
            errors = str(payload.get("Errors") or "")[:200]
            raise PayloadError(self.provider, f"{label}: WasSuccessful is false: {message} {errors}".rstrip())
        records = _record_list(self.provider, payload, "Records", label)
        requested = int(params["page"])
        current = payload.get("CurrentPage", requested)
        if current != requested:
            raise PaginationLoopError(
                self.provider, f"{label}: asked for page {requested}, got CurrentPage {current!r}"
            )
        ids = [record.get(self._id_key) for record in records]
        if ids and ids == self._previous_ids:
            raise PaginationLoopError(self.provider, f"{label}: same records as the previous page")
        self._previous_ids = ids
        return records

    def next_params(self, payload: dict[str, Any], params: Mapping[str, str], label: Label) -> dict[str, str] | None:
        has_next = payload.get("HasNextPage")
        if not isinstance(has_next, bool):
            raise PayloadError(self.provider, f"{label}: field 'HasNextPage' is {has_next!r}, expected true/false")
        if not has_next:
            return None
        page = int(params["page"])
        total_pages = payload.get("TotalPages")
        if isinstance(total_pages, int) and page >= total_pages:
            raise PaginationLoopError(self.provider, f"{label}: HasNextPage is true on page {page} of {total_pages}")
        return {**params, "page": str(page + 1)}


def fetch_page(
    session: HttpSession,
    path: str,
    params: Mapping[str, str],
    number: int,
    paginator: Paginator,
    stats: RequestStats,
    *,
    stop: threading.Event | None = None,
) -> Page:
    """Page `number` of a walk, its records checked by `paginator`."""
    request = session.client.build_request("GET", path, params=params)  # built once: it is costly
    label = PageLabel(number, request.url, session.redactor)
    payload = session.send_json(request, stats, what=label, stop=stop)
    records = paginator.records(payload, params, label)
    stats.pages += 1
    return Page(number=number, label=label, payload=payload, records=records)


def iter_pages(
    session: HttpSession,
    path: str,
    params: Mapping[str, str],
    paginator: Paginator,
    stats: RequestStats,
    *,
    max_pages: int = DEFAULT_MAX_PAGES,
    stop: threading.Event | None = None,
    first_number: int = 1,
    before_page: Callable[[], None] | None = None,
) -> Iterator[Page]:
    """Yields every page of one walk from page `first_number`; stops early (quietly) once `stop` is set.

    `before_page` runs before each request (it may wait, e.g. for room in a record budget).
    """
    current = dict(params)
    for number in range(first_number, max_pages + 1):
        if before_page is not None:
            before_page()
        if stop is not None and stop.is_set():
            return
        page = fetch_page(session, path, current, number, paginator, stats, stop=stop)
        yield page
        following = paginator.next_params(page.payload, current, page.label)
        if following is None:
            return
        current = following
    raise PaginationLoopError(paginator.provider, f"more than {max_pages} pages from {path}; giving up")
