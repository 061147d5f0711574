"""A window's pages fetched concurrently (Nexudus): once page 1 has told `TotalPages`, pages 2..N are known.

They are fetched in stretches of consecutive pages on the client's page pool, each
stretch parsed as one batch, and put back in page order. Every check of a walk in
sequence still holds: each page is the one asked for, `HasNextPage` is a boolean
that agrees with `TotalPages`, no page repeats the one before it (also across
stretches), and a last page that says more came in meanwhile is followed in sequence.
"""

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.http.errors import PaginationLoopError, ProviderError
from completions_assets.http.pagination import DEFAULT_MAX_PAGES, Page, PageNumberPaginator, fetch_page, iter_pages
from completions_assets.http.redaction import Label
from completions_assets.http.session import HttpSession, RequestStats
from completions_assets.providers.planning import Window, WindowTicket
from completions_assets.providers.ranges import WindowReport, WindowTooLarge
from completions_assets.providers.records import PARSE_BATCH_RECORDS, RecordLocator, parse_walk
from completions_assets.providers.spill import WindowRows

logger = logging.getLogger(__name__)

Parse = Callable[[list[dict[str, Any]], RecordLocator], pa.Table]


@dataclass(frozen=True)
class _Edge:
    """A page at the edge of a stretch: enough to tell whether the next page repeats it (its
    records are not kept: the stretches of a window would otherwise hold two pages each)."""

    label: Label
    ids: list[Any]

    @classmethod
    def of(cls, page: Page) -> "_Edge":
        return cls(page.label, [record.get("Id") for record in page.records])


@dataclass
class _Stretch:
    """Consecutive pages fetched on one thread, parsed as one batch and written."""

    served: pa.Table  # see WindowRows.add
    stats: RequestStats
    paginator: PageNumberPaginator  # remembers the last page's ids
    first: _Edge | None = None
    last: _Edge | None = None
    records: int = 0
    following: dict[str, str] | None = field(default=None)  # the last page's next params, if any
    error: ProviderError | None = None  # the first page's, raised once it is known not to repeat the page before


@dataclass(frozen=True)
class PageWalk:
    """Where a window's pages come from: the endpoint, its first query, and the page size."""

    session: HttpSession
    path: str
    params: Mapping[str, str]
    page_size: int
    provider: str
    seconds: float  # of event time the query covers, widening included
    max_pages: int = DEFAULT_MAX_PAGES


def walk_concurrently(
    session: HttpSession,
    provider: Any,
    params: Mapping[str, str],
    settings: Any,
    window: Window,
    ticket: WindowTicket,
    pool: ThreadPoolExecutor,
    parse: Parse,
    rows: WindowRows,
    *,
    seconds: float,
) -> tuple[pa.Table, WindowReport, RequestStats]:
    """Every page of the window (see walk_pages), checked against what page 1 reported.

    Returns what was served, the window's report (its filter and TotalItems) and the requests' counts.
    """
    walk = PageWalk(session, provider.path, params, settings.page_size, provider.name, seconds)
    concurrent = settings.max_concurrent_requests
    served, first, stats = walk_pages(walk, window, pool, concurrent, ticket, parse, rows)
    bounds = (params[provider.time_filter.start_param], params[provider.time_filter.end_param])
    # `dir` is documented three ways: verify the order instead of trusting it (rows get sorted anyway).
    times = served[provider.event_column].cast(pa.int64()).to_numpy()
    if len(times) > 1 and bool(np.any(times[1:] < times[:-1])):
        logger.warning("%s %s..%s: rows were not served in %s order", provider.name, *bounds, provider.event_column)
    total_pages = _reported(first, "TotalPages")
    if total_pages is not None and stats.pages != max(1, total_pages):
        logger.warning(
            "%s %s..%s: fetched %d pages, TotalPages said %d", provider.name, *bounds, stats.pages, total_pages
        )
    distinct = pc.count_distinct(served[provider.id_column]).as_py()
    return served, WindowReport(*bounds, _reported(first, "TotalItems"), distinct, stats.requests), stats


def _reported(page: Page | None, key: str) -> int | None:
    value = page.payload.get(key) if page is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def walk_pages(
    walk: PageWalk,
    window: Window,
    pool: ThreadPoolExecutor,
    concurrent: int,
    ticket: WindowTicket,
    parse: Parse,
    rows: WindowRows,
) -> tuple[pa.Table, Page, RequestStats]:
    """Every page of the window: page 1, then the rest `concurrent` stretches at a time, written to
    `rows` as they are parsed.

    Returns what was served (see WindowRows.add) in page order, page 1 and the requests' counts.

    Raises:
        WindowTooLarge: page 1's TotalItems is far beyond what the window was planned to hold.
    """
    stats = RequestStats()
    paginator = PageNumberPaginator(walk.provider)
    ticket.take(walk.page_size)
    # On the pool too, so the pool's size bounds every request in flight.
    first = pool.submit(
        fetch_page, walk.session, walk.path, walk.params, 1, paginator, stats, stop=ticket.stop
    ).result()
    total = first.payload.get("TotalItems")
    if type(total) is int:  # the density, before the rest of the window is in
        ticket.planner.observe(total, walk.seconds)
        if ticket.blind and ticket.planner.oversized(round(total * window.seconds / walk.seconds), window):
            ticket.budget.give(walk.page_size)
            raise WindowTooLarge(f"{walk.provider}: {first.label}: TotalItems {total}")
    served_parts = [parse_walk(ticket.returning_room([first], walk.page_size), parse, walk.provider, rows)]
    following = paginator.next_params(first.payload, walk.params, first.label)
    total_pages = first.payload.get("TotalPages")
    last_paginator = paginator
    if following is not None and type(total_pages) is int and total_pages > 1:
        stretches = _fetch_stretches(
            walk, pool, _page_stretches(total_pages, walk.page_size, concurrent), ticket, parse, rows
        )
        previous = _Edge.of(first)
        for stretch in stretches:
            _check_follows(walk.provider, previous, stretch.first)
            if stretch.error is not None:
                raise stretch.error
            previous = stretch.last or previous
            stats.add(stretch.stats)
            served_parts.append(stretch.served)
        following = stretches[-1].following if stretches else None
        last_paginator = stretches[-1].paginator if stretches else paginator
    if following is not None:  # no TotalPages, or more records came in: on in sequence
        rest = iter_pages(
            walk.session,
            walk.path,
            following,
            last_paginator,
            stats,
            max_pages=walk.max_pages,
            stop=ticket.stop,
            first_number=int(following["page"]),
            before_page=lambda: ticket.take(walk.page_size),
        )
        served_parts.append(parse_walk(ticket.returning_room(rest, walk.page_size), parse, walk.provider, rows))
    return pa.concat_tables(served_parts), first, stats


def _page_stretches(total_pages: int, page_size: int, concurrent: int) -> list[range]:
    """Pages 2..total_pages cut into stretches: enough stretches to keep `concurrent` threads busy, each
    at most a parse batch long."""
    pages = range(2, total_pages + 1)
    length = max(1, min(PARSE_BATCH_RECORDS // page_size, math.ceil(len(pages) / concurrent)))
    return [pages[i : i + length] for i in range(0, len(pages), length)]


def _fetch_stretches(
    walk: PageWalk,
    pool: ThreadPoolExecutor,
    stretches: Sequence[range],
    ticket: WindowTicket,
    parse: Parse,
    rows: WindowRows,
) -> list[_Stretch]:
    futures: list[Future[_Stretch]] = []
    try:
        for numbers in stretches:
            ticket.take(len(numbers) * walk.page_size)  # before submitting: a queued stretch never waits for room
            if ticket.stop.is_set():
                break
            futures.append(pool.submit(_fetch_stretch, walk, numbers, ticket.stop, parse, rows))
        done = [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)  # a stretch still going would write its rows after the window's files are gone
        raise
    for numbers, stretch in zip(stretches, done, strict=False):
        ticket.budget.give(len(numbers) * walk.page_size - stretch.records)
    return done


def _fetch_stretch(walk: PageWalk, numbers: range, stop: threading.Event, parse: Parse, rows: WindowRows) -> _Stretch:
    stats = RequestStats()
    paginator = PageNumberPaginator(walk.provider)
    locator = RecordLocator(walk.provider)
    records: list[dict[str, Any]] = []
    stretch = _Stretch(pa.table({}), stats, paginator)
    for number in numbers:
        if stop.is_set():
            break
        params = {**walk.params, "page": str(number)}
        page = fetch_page(walk.session, walk.path, params, number, paginator, stats, stop=stop)
        first = stretch.first is None
        stretch.last = _Edge.of(page)
        stretch.first = stretch.first or stretch.last
        locator.add_page(page.label, len(page.records))
        records.extend(page.records)
        try:
            stretch.following = paginator.next_params(page.payload, params, page.label)  # checks HasNextPage
        except ProviderError as exc:
            if not first:
                raise
            stretch.error = exc  # a walk in sequence would first have found this page repeating the one before
            break
    stretch.records = len(records)
    stretch.served = rows.add(parse(records, locator))
    return stretch


def _check_follows(provider: str, previous: _Edge, page: _Edge | None) -> None:
    if page is not None and page.ids and page.ids == previous.ids:
        raise PaginationLoopError(provider, f"{page.label}: same records as the previous page")
