"""A window's pages fetched concurrently (Nexudus): once page 1 has told `TotalPages`, pages 2..N are known.

They are fetched in runs of consecutive pages on the client's page pool, each
run parsed as one batch, and put back in page order. Every check of a walk in
turn still holds: each page is the one asked for, `HasNextPage` is a boolean
that agrees with `TotalPages`, no page repeats the one before it (also across
runs), and a last page that says more came in meanwhile is followed in turn.
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
from completions_assets.providers.planning import Span, WindowTurn
from completions_assets.providers.records import PARSE_BATCH_RECORDS, RecordLocator, parse_walk
from completions_assets.providers.spill import WindowRows
from completions_assets.providers.sweeps import WindowReport, WindowTooLarge

logger = logging.getLogger(__name__)

Parse = Callable[[list[dict[str, Any]], RecordLocator], pa.Table]


@dataclass(frozen=True)
class _Edge:
    """A page at the edge of a run: enough to tell whether the next page repeats it (its
    records are not kept: the runs of a window would otherwise hold two pages each)."""

    label: Label
    ids: list[Any]

    @classmethod
    def of(cls, page: Page) -> "_Edge":
        return cls(page.label, [record.get("Id") for record in page.records])


@dataclass
class _Run:
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
    span: Span,
    turn: WindowTurn,
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
    served, first, stats = walk_pages(walk, span, pool, concurrent, turn, parse, rows)
    window = (params[provider.time_filter.start_param], params[provider.time_filter.end_param])
    # `dir` is documented three ways: verify the order instead of trusting it (rows get sorted anyway).
    times = served[provider.event_column].cast(pa.int64()).to_numpy()
    if len(times) > 1 and bool(np.any(times[1:] < times[:-1])):
        logger.warning("%s %s..%s: rows were not served in %s order", provider.name, *window, provider.event_column)
    total_pages = _reported(first, "TotalPages")
    if total_pages is not None and stats.pages != max(1, total_pages):
        logger.warning(
            "%s %s..%s: fetched %d pages, TotalPages said %d", provider.name, *window, stats.pages, total_pages
        )
    distinct = pc.count_distinct(served[provider.id_column]).as_py()
    return served, WindowReport(*window, _reported(first, "TotalItems"), distinct, stats.requests), stats


def _reported(page: Page | None, key: str) -> int | None:
    value = page.payload.get(key) if page is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def walk_pages(
    walk: PageWalk,
    span: Span,
    pool: ThreadPoolExecutor,
    concurrent: int,
    turn: WindowTurn,
    parse: Parse,
    rows: WindowRows,
) -> tuple[pa.Table, Page, RequestStats]:
    """Every page of the window: page 1, then the rest `concurrent` runs at a time, written to
    `rows` as they are parsed.

    Returns what was served (see WindowRows.add) in page order, page 1 and the requests' counts.

    Raises:
        WindowTooLarge: page 1's TotalItems is far beyond what the window was planned to hold.
    """
    stats = RequestStats()
    paginator = PageNumberPaginator(walk.provider)
    turn.take(walk.page_size)
    # On the pool too, so the pool's size bounds every request in flight.
    first = pool.submit(fetch_page, walk.session, walk.path, walk.params, 1, paginator, stats, stop=turn.stop).result()
    total = first.payload.get("TotalItems")
    if type(total) is int:  # the density, before the rest of the window is in
        turn.planner.observe(total, walk.seconds)
        if turn.blind and turn.planner.oversized(round(total * span.seconds / walk.seconds), span):
            turn.budget.give(walk.page_size)
            raise WindowTooLarge(f"{walk.provider}: {first.label}: TotalItems {total}")
    served_parts = [parse_walk(turn.returning_room([first], walk.page_size), parse, walk.provider, rows)]
    following = paginator.next_params(first.payload, walk.params, first.label)
    total_pages = first.payload.get("TotalPages")
    last_paginator = paginator
    if following is not None and type(total_pages) is int and total_pages > 1:
        runs = _fetch_runs(walk, pool, _page_runs(total_pages, walk.page_size, concurrent), turn, parse, rows)
        previous = _Edge.of(first)
        for run in runs:
            _check_follows(walk.provider, previous, run.first)
            if run.error is not None:
                raise run.error
            previous = run.last or previous
            stats.add(run.stats)
            served_parts.append(run.served)
        following = runs[-1].following if runs else None
        last_paginator = runs[-1].paginator if runs else paginator
    if following is not None:  # no TotalPages, or more records came in: on in turn
        rest = iter_pages(
            walk.session,
            walk.path,
            following,
            last_paginator,
            stats,
            max_pages=walk.max_pages,
            stop=turn.stop,
            first_number=int(following["page"]),
            before_page=lambda: turn.take(walk.page_size),
        )
        served_parts.append(parse_walk(turn.returning_room(rest, walk.page_size), parse, walk.provider, rows))
    return pa.concat_tables(served_parts), first, stats


def _page_runs(total_pages: int, page_size: int, concurrent: int) -> list[range]:
    """Pages 2..total_pages cut into runs: enough runs to keep `concurrent` threads busy, each
    at most a parse batch long."""
    pages = range(2, total_pages + 1)
    length = max(1, min(PARSE_BATCH_RECORDS // page_size, math.ceil(len(pages) / concurrent)))
    return [pages[i : i + length] for i in range(0, len(pages), length)]


def _fetch_runs(
    walk: PageWalk, pool: ThreadPoolExecutor, runs: Sequence[range], turn: WindowTurn, parse: Parse, rows: WindowRows
) -> list[_Run]:
    futures: list[Future[_Run]] = []
    try:
        for numbers in runs:
            turn.take(len(numbers) * walk.page_size)  # before submitting: a queued run never waits for room
            if turn.stop.is_set():
                break
            futures.append(pool.submit(_fetch_run, walk, numbers, turn.stop, parse, rows))
        done = [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)  # a run still going would write its rows after the window's files are gone
        raise
    for numbers, run in zip(runs, done, strict=False):
        turn.budget.give(len(numbers) * walk.page_size - run.records)
    return done


def _fetch_run(walk: PageWalk, numbers: range, stop: threading.Event, parse: Parse, rows: WindowRows) -> _Run:
    stats = RequestStats()
    paginator = PageNumberPaginator(walk.provider)
    locator = RecordLocator(walk.provider)
    records: list[dict[str, Any]] = []
    run = _Run(pa.table({}), stats, paginator)
    for number in numbers:
        if stop.is_set():
            break
        params = {**walk.params, "page": str(number)}
        page = fetch_page(walk.session, walk.path, params, number, paginator, stats, stop=stop)
        first = run.first is None
        run.last = _Edge.of(page)
        run.first = run.first or run.last
        locator.add_page(page.label, len(page.records))
        records.extend(page.records)
        try:
            run.following = paginator.next_params(page.payload, params, page.label)  # checks HasNextPage
        except ProviderError as exc:
            if not first:
                raise
            run.error = exc  # a walk in turn would first have found this page repeating the one before
            break
    run.records = len(records)
    run.served = rows.add(parse(records, locator))
    return run


def _check_follows(provider: str, previous: _Edge, page: _Edge | None) -> None:
    if page is not None and page.ids and page.ids == previous.ids:
        raise PaginationLoopError(provider, f"{page.label}: same records as the previous page")
