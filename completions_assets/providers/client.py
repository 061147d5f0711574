"""The generic provider client: one httpx.Client and pacer, page walks, sweeps split into days.

It reads the provider's declaration (endpoint, paginator, throttle statuses,
columns) and its resource's settings; a provider subclass adds only what is its
own: request headers or auth, the query of a sweep, its parser, and what it
checks once a sweep is in.
"""

import abc
import datetime as dt
import itertools
import logging
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

import httpx
import pyarrow as pa

from completions_assets.http.pacing import Clock, Pacer, SystemClock
from completions_assets.http.pagination import Page, iter_pages
from completions_assets.http.redaction import Redactor
from completions_assets.http.session import HttpSession, RequestStats, build_client
from completions_assets.partitions import DayWindow
from completions_assets.providers.declaration import Provider
from completions_assets.providers.records import RecordLocator, parse_walk, unknown_fields
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import DayBatch, FetchStats, SweepResult, run_sweeps, split_days, sweep_groups
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
        client = build_client(
            self.base_url,
            headers=self.headers(),
            auth=self.auth(),
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_concurrent_sweeps + 1,
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

    def finish_sweep(
        self, table: pa.Table, first: Page | None, params: Mapping[str, str], stats: RequestStats, unknown: set[str]
    ) -> SweepResult:
        """The sweep's result; a provider may cross-check what it reported here."""
        return SweepResult(table=table, stats=FetchStats.from_requests(stats, unknown_fields=unknown))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch_sweep(self, start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        """Every record with event time in [start, end) (possibly more), parsed."""
        params = self.sweep_params(start, end)
        stats = RequestStats()
        walker = self.provider.paginator(self.provider.name)
        pages = iter_pages(self.session, self.provider.path, params, walker, stats, max_pages=MAX_PAGES, stop=stop)
        first = next(pages, None)
        unknown: set[str] = set()

        def parse(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
            unknown.update(unknown_fields(records, self.provider.documented_fields))
            return self.parse(records, locator)

        table = parse_walk(itertools.chain([first] if first else [], pages), parse, self.provider.name)
        logger.debug(
            "%s sweep %s..%s: %d records in %d requests", self.provider.name, start, end, table.num_rows, stats.requests
        )
        return self.finish_sweep(table, first, params, stats, unknown)

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """Yields one DayBatch per window, in order.

        Args:
            windows: contiguous, sorted day windows (one day or a range).

        Raises:
            ValueError: the windows are not contiguous and sorted.
            ProviderError: a sweep failed (days before it have been yielded).
        """
        sweeps = sweep_groups(windows, self.settings.sweep_days)
        provider = self.provider
        results = run_sweeps(
            self.fetch_sweep, sweeps, self.settings.max_concurrent_sweeps, provider.name, on_interrupt=self.close
        )
        for days, result in results:
            for window, table in zip(
                days, split_days(result.table, days, provider.event_column, provider.id_column), strict=True
            ):
                yield DayBatch(window=window, table=table, stats=result.stats)
