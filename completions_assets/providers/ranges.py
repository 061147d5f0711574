"""Fetching a range of days: request windows walked concurrently, their rows handed on day by day.

The planner (planning.py) cuts the range into windows sized by records; at
most `concurrent` windows are walked at once on one thread pool (sharing the
client's httpx.Client and pacer), each writes its rows to disk as they are
parsed (spill.py), their results are taken in range order, and each day is read
back and handed on as soon as the windows covering it are in, so memory follows
the record budget, not the length of the range or the size of a window.
"""

import datetime as dt
import itertools
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.days import PartitionDay
from completions_assets.http.session import RequestStats
from completions_assets.providers.planning import RecordBudget, Window, WindowPlanner, WindowTicket
from completions_assets.providers.spill import SpilledRows, trim

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class WindowReport:
    """One request window as sent (Nexudus: widened, minute resolution) and what it returned."""

    request_from: str
    request_to: str
    total_items: int | None  # as reported by the provider (Nexudus TotalItems); None if it reports none
    distinct_fetched: int  # distinct ids actually received
    requests: int = 0


@dataclass(frozen=True)
class FetchStats:
    requests: int
    pages: int
    retries: int
    rate_wait_seconds: float
    reported_total: int | None  # Nexudus: sum of TotalItems of the windows covering the day
    windows: tuple[WindowReport, ...] = ()
    unknown_fields: tuple[str, ...] = ()  # record fields the provider sent beyond the documented ones

    @classmethod
    def from_requests(
        cls, stats: RequestStats, windows: Sequence[WindowReport] = (), *, unknown_fields: Iterable[str] = ()
    ) -> "FetchStats":
        totals = [w.total_items for w in windows if w.total_items is not None]
        reported = sum(totals) if windows and len(totals) == len(windows) else None
        return cls(
            stats.requests,
            stats.pages,
            stats.retries,
            round(stats.rate_wait_seconds, 3),
            reported,
            tuple(windows),
            tuple(sorted(unknown_fields)),
        )

    @classmethod
    def combined(cls, parts: Sequence["FetchStats"]) -> "FetchStats":
        """The cost of several windows (those covering one day)."""
        totals = [p.reported_total for p in parts]
        return cls(
            sum(p.requests for p in parts),
            sum(p.pages for p in parts),
            sum(p.retries for p in parts),
            round(sum(p.rate_wait_seconds for p in parts), 3),
            None if not parts or None in totals else sum(t or 0 for t in totals),
            tuple(w for p in parts for w in p.windows),
            tuple(sorted({f for p in parts for f in p.unknown_fields})),
        )


@dataclass(frozen=True)
class DayBatch:
    """Records of one day: exact raw schema, rows in [start, end), sorted by (event time, id)."""

    day: PartitionDay
    table: pa.Table
    stats: FetchStats  # of the request windows that covered this day


@dataclass(frozen=True)
class WindowResult:
    rows: SpilledRows  # the window's rows inside its window, any order
    stats: FetchStats


WindowFn = Callable[[Window, WindowTicket], WindowResult]


class WindowTooLarge(Exception):
    """A window's first page showed it holds far more records than planned: plan it again."""


def check_contiguous(days: Sequence[PartitionDay]) -> None:
    """Raises ValueError unless the days are contiguous and sorted."""
    for before, after in itertools.pairwise(days):
        if before.end != after.start:
            raise ValueError(f"days must be contiguous and sorted: {before.date} then {after.date}")


def walk_windows(
    fetch_window: WindowFn,
    planner: WindowPlanner,
    budget: RecordBudget,
    concurrent: int,
    provider: str,
    *,
    blind: int = 2,
    on_interrupt: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> Generator[tuple[Window, WindowResult], None, None]:
    """Window results in range order, with at most `concurrent` windows running or waiting to be consumed.

    A window is planned when a worker frees up, so each one is sized by what
    the windows before it found; until one has, at most `blind` windows run. A
    window that raises WindowTooLarge is planned again, if it was the only one
    running (a blind window of a provider that reports totals). When the caller stops (an error, an abandoned
    generator, or the step being terminated), every walk stops at its next page
    or wait; on termination `on_interrupt` also cuts requests in flight. Setting `stop` from
    another thread stops the walks the same way (the caller's thread then sees Stopped).
    """
    stop = stop or threading.Event()
    pool = ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix=f"{provider}-window")
    pending: deque[tuple[Window, Future[WindowResult]]] = deque()
    planned = 0

    def plan() -> None:
        nonlocal planned
        # Until a window has shown the density, `blind` first-guess windows: a sparse range would
        # otherwise pay a request for each of `concurrent` short windows.
        while (
            len(pending) < (concurrent if planner.knows_density else min(concurrent, blind))
            and (window := planner.next()) is not None
        ):
            ticket = WindowTicket(planned, budget, planner, stop, blind=not planner.knows_density)
            pending.append((window, pool.submit(fetch_window, window, ticket)))
            planned += 1

    try:
        plan()
        consumed = 0
        while pending:
            window, future = pending.popleft()
            try:
                result = future.result()
            except WindowTooLarge:
                if pending:
                    raise
                planner.rewind(window)
                planned -= 1  # the window planned again keeps its place in the range
                plan()
                continue
            plan()
            del future  # it holds the result too: the window's rows must go once the caller is done
            yield window, result
            del result  # not kept while the next window is awaited
            # Only now, its days written, does the next window pass the budget: while the caller
            # still held them, the next window's pages would have been decoded beside them.
            budget.handed_on(consumed)
            consumed += 1
    except BaseException as exc:
        stop.set()
        if on_interrupt is not None and not isinstance(exc, Exception):  # terminated, not failed
            on_interrupt()
        raise
    finally:
        stop.set()  # a failure or an abandoned generator ends the other walks at their next page
        pool.shutdown(wait=True, cancel_futures=True)


class DayAssembler:
    """Makes window results, taken in range order, into whole days as soon as each is covered.

    A day's rows are read back from the windows covering it under the records
    budget: room for them is taken (as window `index`, see RecordBudget) before
    they are read, and what the days do not keep is given back at once; each
    day's own rows are the caller's to give back once it is written.
    """

    def __init__(
        self,
        days: Sequence[PartitionDay],
        event_column: str,
        id_column: str,
        *,
        budget: RecordBudget | None = None,
        stop: threading.Event | None = None,
        finish: Callable[[pa.Table], pa.Table] = lambda table: table,
    ) -> None:
        self._days = deque(days)
        self._event = event_column
        self._id = id_column
        self._budget = budget or RecordBudget(2**62)
        self._stop = stop or threading.Event()
        self._finish = finish  # a window's rows as read back (Nexudus: one copy of a record served twice)
        self._parts: list[tuple[Window, SpilledRows]] = []
        self._windows: list[tuple[Window, FetchStats]] = []

    def add(self, window: Window, rows: SpilledRows, stats: FetchStats, index: int = 0) -> Iterator[DayBatch]:
        """Days that end by `window.end`; `rows` are the window's rows in [window.start, window.end) only."""
        self._parts.append((window, rows))
        self._windows.append((window, stats))
        ready = []
        while self._days and self._days[0].end <= window.end:
            ready.append(self._days.popleft())
        if not ready:
            return
        start, end = ready[0].start, ready[-1].end
        read = sum(part.rows for _, part in self._parts)
        self._budget.take(read, index, self._stop)
        inside = pa.concat_tables(
            [self._read(covered, part, start, end) for covered, part in self._parts if covered.start < end]
        )
        self._budget.give(read - inside.num_rows)
        for covered, part in self._parts:
            if covered.end <= end:
                part.discard()
        # Parts reaching past the last day ready are read again for the days after it.
        self._parts = [(covered, part) for covered, part in self._parts if covered.end > end]
        order, cuts = _day_order(inside, ready, self._event, self._id)
        for day, (lo, hi) in zip(ready, itertools.pairwise(cuts), strict=True):
            covering = [stats for w, stats in self._windows if w.start < day.end and w.end > day.start]
            yield DayBatch(day=day, table=inside.take(order[lo:hi]), stats=FetchStats.combined(covering))
        self._windows = [(w, s) for w, s in self._windows if not self._days or w.end > self._days[0].start]

    def discard(self) -> None:
        """Removes the files of windows whose days were not all handed on (a range that failed)."""
        for _, part in self._parts:
            part.discard()
        self._parts = []

    def _read(self, window: Window, part: SpilledRows, start: dt.datetime, end: dt.datetime) -> pa.Table:
        table = self._finish(part.read())
        if start <= window.start and window.end <= end:
            return table
        return trim(table, Window(max(start, window.start), min(end, window.end)), self._event)


def _day_order(
    table: pa.Table, days: Sequence[PartitionDay], event_column: str, id_column: str
) -> tuple[pa.Array, list[int]]:
    """The indices that sort `table` by (event time, id), and where in them each day starts, then
    where the last one ends (len(days) + 1 positions): rows of day i are order[cuts[i]:cuts[i + 1]]."""
    order = pc.sort_indices(table, sort_keys=[(event_column, "ascending"), (id_column, "ascending")])
    micros = pc.take(table.column(event_column), order).cast(pa.int64()).to_numpy()
    bounds = [_micros(days[0].start)] + [_micros(day.end) for day in days]
    return order, [int(cut) for cut in np.searchsorted(micros, bounds, side="left")]


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)
