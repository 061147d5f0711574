"""Fetching a range of days: sweeps of several days, run concurrently, yielded day by day.

A range costs about ceil(records / page_size) requests per sweep, never one
sweep per day: consecutive days are grouped into sweeps of up to
`sweep_days`, at most `max_concurrent_sweeps` run at once on one thread pool
(sharing the client's httpx.Client and pacer), and days are yielded in order
as their sweep completes, so memory is bounded by the sweeps in flight.
"""

import datetime as dt
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.http.session import RequestStats
from completions_assets.partitions import DayWindow

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class WindowReport:
    """One request window (Nexudus: widened, minute resolution) and what it returned."""

    request_from: str
    request_to: str
    total_items: int | None  # as reported by the provider (Nexudus TotalItems)
    distinct_fetched: int  # distinct ids actually received


@dataclass(frozen=True)
class FetchStats:
    requests: int
    pages: int
    retries: int
    rate_wait_seconds: float
    reported_total: int | None  # Nexudus: sum of TotalItems of the sweep(s) covering the day
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


@dataclass(frozen=True)
class DayBatch:
    """Records of one day: exact raw schema, rows in [start, end), sorted by (event time, id)."""

    window: DayWindow
    table: pa.Table
    stats: FetchStats  # of the sweep that covered this day (shared by its days)


@dataclass(frozen=True)
class SweepResult:
    table: pa.Table  # every parsed record of the sweep, untrimmed, any order
    stats: FetchStats


SweepFn = Callable[[dt.datetime, dt.datetime, threading.Event], SweepResult]


def sweep_groups(windows: Sequence[DayWindow], sweep_days: int) -> list[list[DayWindow]]:
    """Contiguous, sorted day windows cut into sweeps of up to `sweep_days` days.

    Raises:
        ValueError: the windows are not contiguous and sorted.
    """
    for before, after in itertools.pairwise(windows):
        if before.end != after.start:
            raise ValueError(f"day windows must be contiguous and sorted: {before.day} then {after.day}")
    return [list(windows[i : i + sweep_days]) for i in range(0, len(windows), sweep_days)]


def run_sweeps(
    fetch_sweep: SweepFn,
    sweeps: list[list[DayWindow]],
    max_concurrent: int,
    provider: str,
    *,
    on_interrupt: Callable[[], None] | None = None,
) -> Iterator[tuple[list[DayWindow], SweepResult]]:
    """Results in sweep order, with at most `max_concurrent` sweeps running or waiting to be consumed.

    When the caller stops (an error, an abandoned generator, or the step being
    terminated), every sweep stops at its next page or wait; on termination
    `on_interrupt` also cuts requests in flight, so the step ends within seconds.
    """
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix=f"{provider}-sweep")
    pending: deque[tuple[list[DayWindow], Future[SweepResult]]] = deque()
    remaining = iter(sweeps)
    try:
        for days in remaining:
            pending.append((days, pool.submit(fetch_sweep, days[0].start, days[-1].end, stop)))
            if len(pending) >= max_concurrent:
                break
        while pending:
            days, future = pending.popleft()
            result = future.result()
            following = next(remaining, None)
            if following is not None:
                pending.append((following, pool.submit(fetch_sweep, following[0].start, following[-1].end, stop)))
            yield days, result
    except BaseException as exc:
        stop.set()
        if on_interrupt is not None and not isinstance(exc, Exception):  # terminated, not failed
            on_interrupt()
        raise
    finally:
        stop.set()  # a failure or an abandoned generator ends the other sweeps at their next page
        pool.shutdown(wait=True, cancel_futures=True)


def split_days(table: pa.Table, days: Sequence[DayWindow], event_column: str, id_column: str) -> list[pa.Table]:
    """One table per day: rows with start <= event < end, sorted by (event time, id)."""
    table = table.take(pc.sort_indices(table, sort_keys=[(event_column, "ascending"), (id_column, "ascending")]))
    micros = table.column(event_column).cast(pa.int64()).to_numpy()
    bounds = [_micros(days[0].start)] + [_micros(day.end) for day in days]
    cuts = np.searchsorted(micros, bounds, side="left")
    return [table.slice(int(lo), int(hi - lo)) for lo, hi in itertools.pairwise(cuts)]


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)
