"""Fetching a range of days: sweeps of several days, run concurrently, yielded day by day.

A range costs about ceil(records / page_size) requests per sweep, never one
sweep per day: consecutive days are grouped into sweeps of up to
`sweep_days`, at most `max_concurrent_sweeps` run at once on one thread pool
(sharing the client's httpx.Client and pacer), and days are yielded in order
as their sweep completes, so memory is bounded by the sweeps in flight.
"""

import abc
import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Self

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from completions_assets.http.session import RequestStats, RetryPolicy
from completions_assets.http.pacing import Clock, RateLimit
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
        return cls(stats.requests, stats.pages, stats.retries, round(stats.rate_wait_seconds, 3), reported, tuple(windows),
                   tuple(sorted(unknown_fields)))


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


@dataclass(frozen=True)
class ClientOptions:
    """Settings shared by both provider clients (the resources map their fields onto these)."""

    page_size: int = 100
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limits: tuple[RateLimit, ...] = ()
    rate_margin_s: float = 0.001
    rate_reset_cap_s: float = 120.0
    sweep_days: int = 8
    max_concurrent_sweeps: int = 4
    max_pages: int = 100_000

    def __post_init__(self) -> None:
        if self.page_size < 1 or self.sweep_days < 1 or self.max_concurrent_sweeps < 1:
            raise ValueError("page_size, sweep_days and max_concurrent_sweeps must be at least 1")


class ProviderClient(abc.ABC):
    """Plain (Dagster-free) client of one provider; subclasses fetch one sweep window."""

    provider: str
    schema: pa.Schema
    event_column: str
    options: ClientOptions

    @abc.abstractmethod
    def fetch_sweep(self, start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        """Every record with event time in [start, end) (possibly more), parsed."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """Yields one DayBatch per window, in order.

        Args:
            windows: contiguous, sorted day windows (one day or a range).

        Raises:
            ValueError: the windows are not contiguous and sorted.
            ProviderError: a sweep failed (days before it have been yielded).
        """
        check_contiguous(windows)
        sweeps = [list(windows[i : i + self.options.sweep_days]) for i in range(0, len(windows), self.options.sweep_days)]
        for days, result in run_sweeps(self.fetch_sweep, sweeps, self.options.max_concurrent_sweeps, self.provider):
            for window, table in zip(days, split_days(result.table, days, self.event_column), strict=True):
                yield DayBatch(window=window, table=table, stats=result.stats)


def check_contiguous(windows: Sequence[DayWindow]) -> None:
    for before, after in zip(windows, windows[1:]):
        if before.end != after.start:
            raise ValueError(f"day windows must be contiguous and sorted: {before.day} then {after.day}")


SweepFn = Callable[[dt.datetime, dt.datetime, threading.Event], SweepResult]


def run_sweeps(
    fetch_sweep: SweepFn, sweeps: list[list[DayWindow]], max_concurrent: int, provider: str
) -> Iterator[tuple[list[DayWindow], SweepResult]]:
    """Results in sweep order, with at most `max_concurrent` sweeps running or waiting to be consumed."""
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
    finally:
        stop.set()  # a failure or an abandoned generator ends the other sweeps at their next page
        pool.shutdown(wait=True, cancel_futures=True)


def split_days(table: pa.Table, days: Sequence[DayWindow], event_column: str) -> list[pa.Table]:
    """One table per day: rows with start <= event < end, sorted by (event time, id)."""
    table = table.take(pc.sort_indices(table, sort_keys=[(event_column, "ascending"), ("id", "ascending")]))
    micros = table.column(event_column).cast(pa.int64()).to_numpy()
    bounds = [_micros(days[0].start)] + [_micros(day.end) for day in days]
    cuts = np.searchsorted(micros, bounds, side="left")
    return [table.slice(int(lo), int(hi - lo)) for lo, hi in zip(cuts[:-1], cuts[1:])]


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


class ProviderResource(ConfigurableResource):
    """Settings shared by both provider resources; one client is built per step and reused for every day."""

    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response (per read).")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, the first included.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles per retry, with jitter.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest backoff delay.")
    retry_after_cap_s: float = Field(default=60.0, ge=0, description="Longest wait honoured from a Retry-After header.")
    rate_margin_ms: int = Field(default=1, ge=0, description="Safety margin added to every rate-limit window.")
    sweep_days: int = Field(default=8, ge=1, description="Consecutive days fetched by one request sweep.")
    max_concurrent_sweeps: int = Field(default=4, ge=1, description="Sweeps in flight at once (threads).")

    _client: ProviderClient | None = PrivateAttr(default=None)

    def create_client(self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None) -> ProviderClient:
        """A new plain client with these settings (the caller closes it)."""
        raise NotImplementedError

    def client_options(self, page_size: int, rate_limits: Sequence[RateLimit]) -> ClientOptions:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_cap_s=self.retry_after_cap_s,
        )
        return ClientOptions(
            page_size=page_size,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            retry=retry,
            rate_limits=tuple(rate_limits),
            rate_margin_s=self.rate_margin_ms / 1000,
            sweep_days=self.sweep_days,
            max_concurrent_sweeps=self.max_concurrent_sweeps,
        )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._client = self.create_client()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """One DayBatch per window, in order (see ProviderClient.fetch_days)."""
        if self._client is not None:
            yield from self._client.fetch_days(windows)
            return
        with self.create_client() as client:  # used outside a Dagster step
            yield from client.fetch_days(windows)
