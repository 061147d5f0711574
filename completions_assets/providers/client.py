"""The generic provider client: one httpx.Client and pacer, page walks, windows handed on as days.

It reads the provider's declaration (endpoint, paginator, throttle statuses,
columns) and its resource's settings; a provider subclass adds only what is its
own: request headers or auth, the query of a sweep, its parser, and what it
checks once a sweep is in.
"""

import abc
import datetime as dt
import functools
import logging
import random
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.http.pacing import Clock, Pacer, SystemClock
from completions_assets.http.pagination import iter_pages
from completions_assets.http.redaction import Redactor
from completions_assets.http.session import HttpSession, RequestStats, build_client
from completions_assets.partitions import DayWindow
from completions_assets.providers.declaration import Provider
from completions_assets.providers.planning import RecordBudget, Span, StepRecords, WindowPlanner, WindowTurn
from completions_assets.providers.records import RecordLocator, parse_walk, unknown_fields
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.spill import WindowRows, window_files_dir
from completions_assets.providers.sweeps import (
    DayAssembler,
    DayBatch,
    FetchStats,
    SweepResult,
    WindowReport,
    check_contiguous,
    run_windows,
)
from completions_assets.settings import check_base_url

logger = logging.getLogger(__name__)

MAX_PAGES = 100_000  # per sweep: beyond this a walk is taken for a loop


class ProviderClient(abc.ABC):
    """Plain (Dagster-free) client of one provider. Thread-safe."""

    def __init__(
        self,
        provider: Provider,
        settings: ProviderResource,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.credentials = settings.credentials(provider.secret_env)
        self.check_credentials()
        self.base_url = check_base_url(settings.base_url, name=provider.name)
        self.clock = clock or SystemClock()
        self.pacer = Pacer(settings.rate_limits(), clock=self.clock, margin_s=settings.rate_margin_ms / 1000)
        self.redactor = Redactor(self.secrets())
        # The records budget of the step fetching this client's connection beside others, if any.
        self.step_records: StepRecords | None = None
        self._walks: set[threading.Event] = set()  # the stop events of the range walks under way
        client = build_client(
            self.base_url,
            headers=self.headers(),
            auth=self.auth(),
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_concurrent_requests + 2,
            transport=transport,
        )
        self.session = HttpSession(
            provider.name,
            client,
            retry=settings,
            pacer=self.pacer,
            clock=self.clock,
            redactor=self.redactor,
            throttle_statuses=provider.throttle_statuses,
            on_success=self.on_success,
            rng=rng,
        )

    def check_credentials(self) -> None:
        """Raises ConfigurationError, before any request, when a needed credential is missing."""

    def secrets(self) -> Sequence[str | None]:
        """Values masked in every message."""
        return tuple(self.credentials.values())

    def headers(self) -> Mapping[str, str]:
        return {}

    def auth(self) -> httpx.Auth | None:
        return None

    def on_success(self, response: httpx.Response) -> None:
        """Sees every 2xx response (e.g. to read rate-limit headers)."""

    @abc.abstractmethod
    def sweep_params(self, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
        """The query of the first page of a sweep covering [start, end)."""

    @abc.abstractmethod
    def parse(self, records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
        """Records as a table of the provider's schema."""

    def close(self) -> None:
        self.session.close()

    def interrupt(self) -> None:
        """From another thread: ends every wait of this client at once and cuts its requests in flight."""
        for stop in list(self._walks):
            stop.set()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def window_concurrency(self) -> int:
        """Windows walked at once: one request each, for a provider whose pages can only be walked in turn."""
        return self.settings.max_concurrent_requests

    def first_windows(self) -> tuple[int, dt.timedelta]:
        """How many windows to walk, and how long, before any has shown the density: two days
        at once, as a cursor walk reports no total."""
        return 2, dt.timedelta(days=1)

    def window_target(self) -> int:
        """Records a window is sized to hold. A day is read back whole from the windows covering
        it, under the budget: windows that fit it together keep that read near the budget."""
        settings = self.settings
        return max(1, min(settings.window_records, settings.max_records_in_flight // self.window_concurrency()))

    def finish_window(self, table: pa.Table) -> pa.Table:
        """A window's rows as read back to be cut into days."""
        return table

    def window_rows(self, span: Span, turn: WindowTurn, directory: Path) -> WindowRows:
        """Where a window's parsed rows go (see spill.py), giving their room back as they do."""
        provider = self.provider
        return WindowRows(
            directory / f"{turn.index}-{span.start:%Y%m%dT%H%M%S}.arrow",
            span,
            provider.schema,
            id_column=provider.id_column,
            event_column=provider.event_column,
            give=turn.budget.give,
        )

    def checked_parser(self, unknown: set[str]) -> Callable[[list[dict[str, Any]], RecordLocator], pa.Table]:
        """`parse`, collecting into `unknown` the fields the provider sent beyond the documented ones."""

        def parse(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
            unknown.update(unknown_fields(records, self.provider.documented_fields))
            return self.parse(records, locator)

        return parse

    def fetch_sweep(self, span: Span, turn: WindowTurn, directory: Path) -> SweepResult:
        """Every record with event time in the window, parsed and written to `directory`; a page at a time, in turn."""
        params = self.sweep_params(span.start, span.end)
        stats = RequestStats()
        walker = self.provider.paginator(self.provider.name)
        page_size = self.settings.page_size
        pages = iter_pages(
            self.session,
            self.provider.path,
            params,
            walker,
            stats,
            max_pages=MAX_PAGES,
            stop=turn.stop,
            before_page=lambda: turn.take(page_size),
        )
        unknown: set[str] = set()
        with self.window_rows(span, turn, directory) as rows:
            served = parse_walk(
                turn.returning_room(pages, page_size), self.checked_parser(unknown), self.provider.name, rows
            )
        logger.debug(
            "%s window %s..%s: %d records in %d requests",
            self.provider.name,
            span.start,
            span.end,
            served.num_rows,
            stats.requests,
        )
        turn.planner.observe(served.num_rows, span.seconds)
        distinct = pc.count_distinct(served[self.provider.id_column]).as_py()
        report = WindowReport(span.start.isoformat(), span.end.isoformat(), None, distinct, stats.requests)
        return SweepResult(rows.spilled(), FetchStats.from_requests(stats, [report], unknown_fields=unknown))

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """Yields one DayBatch per window, in order, each as soon as its records are in.

        Args:
            windows: contiguous, sorted day windows (one day or a range).

        Raises:
            ValueError: the windows are not contiguous and sorted.
            ProviderError: a window failed (days before it have been yielded).
        """
        check_contiguous(windows)
        if not windows:
            return
        settings, provider = self.settings, self.provider
        blind, first_span = self.first_windows()
        planner = WindowPlanner(
            windows[0].start,
            windows[-1].end,
            target_records=self.window_target(),
            max_span=dt.timedelta(days=settings.max_window_days),
            first_span=first_span,
        )
        budget = RecordBudget(settings.max_records_in_flight, self.step_records, owner=self)
        self.budget = budget  # read by tests and the benchmark
        stop = threading.Event()
        days = DayAssembler(
            windows, provider.event_column, provider.id_column, budget=budget, stop=stop, finish=self.finish_window
        )
        directory = window_files_dir(provider.name)
        self._walks.add(stop)
        if self.step_records is not None:
            self.step_records.join(self)
        results = run_windows(
            functools.partial(self.fetch_sweep, directory=directory),
            planner,
            budget,
            self.window_concurrency(),
            provider.name,
            blind=blind,
            on_interrupt=self.close,
            stop=stop,
        )
        try:
            for index, (span, result) in enumerate(results):
                for batch in days.add(span, result.rows, result.stats, index):
                    yield batch
                    budget.give(batch.table.num_rows)  # written by now
                    del batch
                del result  # a generator's locals live on while it waits
        finally:
            results.close()  # its walks are over before their files go
            days.discard()
            shutil.rmtree(directory, ignore_errors=True)
            self._walks.discard(stop)
            budget.give(budget.held)  # what a failed walk still held
            if self.step_records is not None:
                self.step_records.leave(self)
