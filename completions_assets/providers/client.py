"""The client of any provider: one httpx.Client and pacer, request windows walked, days handed on.

It reads a provider's declaration (provider.py) and a connection's plain settings; nothing
here knows Dagster. A window's pages are walked one after another, or (`concurrent_pages`) at once
once the first page has told how many there are (pages.py).
"""

import datetime as dt
import functools
import logging
import random
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.days import PartitionDay
from completions_assets.http.pacing import Clock, Pacer, SystemClock
from completions_assets.http.pagination import iter_pages
from completions_assets.http.redaction import Redactor
from completions_assets.http.session import HttpSession, RequestStats, build_client, user_agent
from completions_assets.lms.dedupe import keep_latest
from completions_assets.providers.pages import Parse, walk_concurrently
from completions_assets.providers.planning import RecordBudget, StepRecords, Window, WindowPlanner, WindowTicket
from completions_assets.providers.provider import FetchSettings, Provider
from completions_assets.providers.ranges import (
    DayAssembler,
    DayBatch,
    FetchStats,
    WindowReport,
    WindowResult,
    check_contiguous,
    walk_windows,
)
from completions_assets.providers.records import RecordLocator, parse_walk, unknown_fields
from completions_assets.providers.spill import WindowRows, window_files_dir
from completions_assets.settings import ConfigurationError, check_base_url

logger = logging.getLogger(__name__)

RATE_RESET_CAP_S = 120.0  # longest pause taken from a provider's budget headers


class ProviderClient:
    """Plain (Dagster-free) client of one provider connection. Thread-safe."""

    def __init__(
        self,
        provider: Provider,
        settings: FetchSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.settings: Any = settings  # the provider's own settings class: its parser reads its fields
        settings.check()
        self.credentials: dict[str, str | None] = {name: getattr(settings, name) for name in provider.secret_env}
        self._check_credentials()
        self.base_url = check_base_url(settings.base_url, name=provider.name)
        self.clock = clock or SystemClock()
        self.pacer = Pacer(settings.rate_limits(), clock=self.clock, margin_s=settings.rate_margin_ms / 1000)
        self.redactor = Redactor(self.credentials.values())
        # The records budget of the step fetching this client's connection beside others, if any.
        self.step_records: StepRecords | None = None
        self._walks: set[threading.Event] = set()  # the stop events of the range walks under way
        self.token_auth: Any = None
        if provider.auth is not None:
            self.token_auth = provider.auth(
                self.base_url, self.credentials, self.redactor, self.clock, provider.throttle_statuses
            )
        headers = {name: value.format_map(self.credentials) for name, value in provider.headers.items()}
        client = build_client(
            self.base_url,
            headers=headers,
            auth=self.token_auth,
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
            on_success=self._read_budget if provider.budget_headers and self.pacer.limits else None,
            rng=rng,
        )
        self.page_pool: ThreadPoolExecutor | None = None
        if provider.concurrent_pages:
            self.page_pool = ThreadPoolExecutor(
                settings.max_concurrent_requests, thread_name_prefix=f"{provider.name}-page"
            )

    def _check_credentials(self) -> None:
        """A connection needs its optional secrets (read from the defaults) and one credential set."""
        given = {name for name, value in self.credentials.items() if value}
        needs = [(*self.provider.optional_secrets, *names) for names in self.provider.credential_sets]
        if not any(given.issuperset(names) for names in needs):
            raise ConfigurationError(f"{self.provider.name}: set " + ", or ".join(" and ".join(n) for n in needs))

    def _read_budget(self, response: httpx.Response) -> None:
        # Another client on the same credentials spends the same budget; with pacing turned
        # off the headers are ignored too (throttling answers are still retried).
        remaining_header, reset_header = self.provider.budget_headers or ("", "")
        try:
            remaining = int(response.headers[remaining_header])
            reset = float(response.headers[reset_header])
        except (KeyError, ValueError):
            return
        self.pacer.observe_budget(remaining, reset, cap_s=RATE_RESET_CAP_S)

    def name_requests(self, what: str) -> None:
        """Adds `what` to the User-Agent of this client's requests, token grants included, so the
        provider's log (and the sandbox's) tells apart what one process fetches in different turns."""
        self.session.client.headers["User-Agent"] = f"{user_agent()} {what}"

    def parse(self, records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
        return self.provider.parse(records, locator, self.settings)

    def close(self) -> None:
        if self.page_pool is not None:
            self.page_pool.shutdown(wait=False, cancel_futures=True)
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

    def _window_concurrency(self) -> int:
        """Windows walked at once. Concurrent pages run within a window; a second window overlaps
        the first one's tail."""
        if self.provider.concurrent_pages:
            return min(2, self.settings.max_concurrent_requests)
        return int(self.settings.max_concurrent_requests)

    def _first_windows(self) -> tuple[int, dt.timedelta]:
        """How many windows to walk, and how long, before any has shown the density: for a cursor
        walk (no total), two days at once; else one long window, whose first page's TotalItems
        tells whether to cut it up, for one request."""
        if self.provider.concurrent_pages:
            return 1, dt.timedelta(days=self.settings.max_window_days)
        return 2, dt.timedelta(days=1)

    def _window_target(self) -> int:
        """Records a window is sized to hold. A day is read back whole from the windows covering
        it, under the budget: windows that fit it together keep that read near the budget. With
        concurrent pages, pages rather than windows run at once: the earliest window may fill it."""
        settings = self.settings
        if self.provider.concurrent_pages:
            return int(min(settings.window_records, settings.max_records_in_flight))
        return int(max(1, min(settings.window_records, settings.max_records_in_flight // self._window_concurrency())))

    def _finish_window(self, table: pa.Table) -> pa.Table:
        """A window's rows as read back to be cut into days. Offset paging serves a record twice
        when rows shift between pages; it is one record (the latest copy kept). A record skipped
        by the shift shows up as fewer distinct ids than TotalItems in the window's report."""
        provider = self.provider
        if provider.concurrent_pages and pc.count_distinct(table[provider.id_column]).as_py() < table.num_rows:
            return keep_latest(table, [provider.id_column], provider.version_column)
        return table

    def _window_rows(self, window: Window, ticket: WindowTicket, directory: Path) -> WindowRows:
        """Where a window's parsed rows go (see spill.py), giving their room back as they do."""
        provider = self.provider
        return WindowRows(
            directory / f"{ticket.index}-{window.start:%Y%m%dT%H%M%S}.arrow",
            window,
            provider.schema,
            id_column=provider.id_column,
            event_column=provider.event_column,
            give=ticket.budget.give,
        )

    def _checked_parser(self, unknown: set[str]) -> Parse:
        """`parse`, collecting into `unknown` the fields the provider sent beyond the documented ones."""

        def parse(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
            unknown.update(unknown_fields(records, self.provider.documented_fields))
            return self.parse(records, locator)

        return parse

    def _fetch_window(self, window: Window, ticket: WindowTicket, directory: Path) -> WindowResult:
        """Every record with event time in the window, parsed and written to `directory`."""
        provider, settings = self.provider, self.settings
        params = provider.window_query(settings, window.start, window.end)
        unknown: set[str] = set()
        with self._window_rows(window, ticket, directory) as rows:
            if self.page_pool is not None:
                widening = provider.widening(settings).total_seconds()
                served, report, stats = walk_concurrently(
                    self.session, provider, params, settings, window, ticket, self.page_pool,
                    self._checked_parser(unknown), rows, seconds=window.seconds + 2 * widening,
                )  # fmt: skip
            else:
                stats = RequestStats()
                pages = iter_pages(
                    self.session,
                    provider.path,
                    params,
                    provider.paginator(provider.name),
                    stats,
                    stop=ticket.stop,
                    before_page=lambda: ticket.take(settings.page_size),
                )
                served = parse_walk(
                    ticket.returning_room(pages, settings.page_size), self._checked_parser(unknown), provider.name, rows
                )
                ticket.planner.observe(served.num_rows, window.seconds)
                distinct = pc.count_distinct(served[provider.id_column]).as_py()
                report = WindowReport(window.start.isoformat(), window.end.isoformat(), None, distinct, stats.requests)
        logger.debug(
            "%s window %s..%s: %d records in %d requests",
            provider.name,
            window.start,
            window.end,
            served.num_rows,
            stats.requests,
        )
        return WindowResult(rows.spilled(), FetchStats.from_requests(stats, [report], unknown_fields=unknown))

    def fetch_days(self, days: Sequence[PartitionDay]) -> Iterator[DayBatch]:
        """Yields one DayBatch per day, in order, each as soon as its records are in.

        Args:
            days: contiguous, sorted days (one day or a range).

        Raises:
            ValueError: the days are not contiguous and sorted.
            ProviderError: a window failed (days before it have been yielded).
        """
        check_contiguous(days)
        if not days:
            return
        settings, provider = self.settings, self.provider
        blind, first_length = self._first_windows()
        planner = WindowPlanner(
            days[0].start,
            days[-1].end,
            target_records=self._window_target(),
            max_length=dt.timedelta(days=settings.max_window_days),
            first_length=first_length,
        )
        budget = RecordBudget(settings.max_records_in_flight, self.step_records, owner=self)
        self.budget = budget  # read by tests and the benchmark
        stop = threading.Event()
        assembler = DayAssembler(
            days, provider.event_column, provider.id_column, budget=budget, stop=stop, finish=self._finish_window
        )
        directory = window_files_dir(provider.name)
        self._walks.add(stop)
        if self.step_records is not None:
            self.step_records.join(self)
        results = walk_windows(
            functools.partial(self._fetch_window, directory=directory),
            planner,
            budget,
            self._window_concurrency(),
            provider.name,
            blind=blind,
            on_interrupt=self.close,
            stop=stop,
        )
        try:
            for index, (window, result) in enumerate(results):
                for batch in assembler.add(window, result.rows, result.stats, index):
                    yield batch
                    budget.give(batch.table.num_rows)  # written by now
                    del batch
                del result  # a generator's locals live on while it waits
        finally:
            results.close()  # its walks are over before their files go
            assembler.discard()
            shutil.rmtree(directory, ignore_errors=True)
            self._walks.discard(stop)
            budget.give(budget.held)  # what a failed walk still held
            if self.step_records is not None:
                self.step_records.leave(self)
