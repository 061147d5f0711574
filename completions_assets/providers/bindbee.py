"""Bindbee unified LMS API: `GET /api/lms/v1/completions`, cursor-paged, as Arrow tables."""

import datetime as dt
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import pyarrow as pa
from pydantic import Field

from completions_assets.http.errors import ConfigurationError
from completions_assets.providers.base import ClientOptions, FetchStats, ProviderClient, ProviderResource, SweepResult
from completions_assets.http.session import HttpSession, RequestStats, build_client, validate_base_url
from completions_assets.http.pagination import CursorPaginator, iter_pages, parse_walk
from completions_assets.providers.records import (
    RecordLocator,
    column,
    durations,
    json_text,
    reference_ids,
    timestamps,
    unknown_fields,
)
from completions_assets.http.pacing import Clock, Pacer, RateLimit, SystemClock
from completions_assets.http.redaction import Redactor
from completions_assets.lms.schema import BINDBEE_SCHEMA

logger = logging.getLogger(__name__)

PROVIDER = "bindbee"
COMPLETIONS_PATH = "/api/lms/v1/completions"
MAX_PAGE_SIZE = 100
DEFAULT_LIMITS = (RateLimit(200, 60.0),)  # per connector token, across all endpoints
_MICROSECOND = dt.timedelta(microseconds=1)
DOCUMENTED_FIELDS = frozenset(BINDBEE_SCHEMA.names)


def format_filter_time(moment: dt.datetime) -> str:
    """UTC, six fractional digits and Z: `2024-01-01T23:59:59.999999Z`."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sweep_params(start: dt.datetime, end: dt.datetime, page_size: int, *, raw_data: bool, custom_fields: bool) -> dict[str, str]:
    """Query of a [start, end) sweep; the provider's bounds are inclusive, hence end minus 1 µs."""
    params = {
        "page_size": str(page_size),
        "completed_at_from": format_filter_time(start),
        "completed_at_to": format_filter_time(end - _MICROSECOND),
    }
    if raw_data:
        params["include_raw_data"] = "true"
    if custom_fields:
        params["include_custom_fields"] = "true"
    return params


def parse_completions(
    records: Sequence[dict[str, Any]], locator: RecordLocator, *, raw_data: bool = False, custom_fields: bool = False
) -> pa.Table:
    """Bindbee completion objects as a BINDBEE_SCHEMA table; unknown fields are ignored."""

    def values(key: str) -> list[Any]:
        return [record.get(key) for record in records]

    columns = {
        "id": column(values("id"), pa.string(), "id", locator, required=True),
        "remote_id": column(values("remote_id"), pa.string(), "remote_id", locator),
        "modified_at": timestamps(values("modified_at"), "modified_at", locator, naive_tz="UTC"),
        "user": reference_ids(values("user"), "user", locator),
        "course": reference_ids(values("course"), "course", locator),
        "content": reference_ids(values("content"), "content", locator),
        "score": column(values("score"), pa.float64(), "score", locator),
        "grade": column(values("grade"), pa.string(), "grade", locator),
        "started_at": timestamps(values("started_at"), "started_at", locator, naive_tz="UTC"),
        "completed_at": timestamps(values("completed_at"), "completed_at", locator, naive_tz="UTC", required=True),
        "time_duration": durations(values("time_duration"), "time_duration", locator),
        "raw_data": json_text(values("raw_data"), enabled=raw_data),
        "custom_fields": json_text(values("custom_fields"), enabled=custom_fields),
    }
    return pa.Table.from_arrays([columns[name] for name in BINDBEE_SCHEMA.names], schema=BINDBEE_SCHEMA)


class BindbeeClient(ProviderClient):
    """Plain Bindbee client: one httpx.Client, paced per connector token. Thread-safe."""

    provider = PROVIDER
    schema = BINDBEE_SCHEMA
    event_column = "completed_at"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        connector_token: str,
        options: ClientOptions | None = None,
        include_raw_data: bool = False,
        include_custom_fields: bool = False,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options or ClientOptions(rate_limits=DEFAULT_LIMITS)
        if not 1 <= self.options.page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(PROVIDER, f"page_size must be 1..{MAX_PAGE_SIZE}, got {self.options.page_size}")
        if not api_key or not connector_token:
            raise ConfigurationError(PROVIDER, "api_key and connector_token are required")
        url = validate_base_url(PROVIDER, base_url)
        self.include_raw_data = include_raw_data
        self.include_custom_fields = include_custom_fields
        clock = clock or SystemClock()
        self.pacer = Pacer(self.options.rate_limits, clock=clock, margin_s=self.options.rate_margin_s)
        client = build_client(
            url,
            headers={"Authorization": f"Bearer {api_key}", "x-connector-token": connector_token},
            auth=None,
            connect_timeout_s=self.options.connect_timeout_s,
            read_timeout_s=self.options.read_timeout_s,
            max_connections=self.options.max_concurrent_sweeps + 1,
            transport=transport,
        )
        self.session = HttpSession(
            PROVIDER,
            client,
            retry=self.options.retry,
            pacer=self.pacer,
            clock=clock,
            redactor=Redactor([api_key, connector_token]),
            on_success=self._observe_budget,
            rng=rng,
        )

    def close(self) -> None:
        self.session.close()

    def _observe_budget(self, response: httpx.Response) -> None:
        # Another client on the same connector token spends the same budget; with
        # pacing turned off the headers are ignored too (429s are still retried).
        if not self.pacer.limits:
            return
        try:
            remaining = int(response.headers["X-RateLimit-Remaining"])
            reset = float(response.headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        self.pacer.observe_budget(remaining, reset, cap_s=self.options.rate_reset_cap_s)

    def fetch_sweep(self, start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        params = sweep_params(
            start, end, self.options.page_size, raw_data=self.include_raw_data, custom_fields=self.include_custom_fields
        )
        stats = RequestStats()
        pages = iter_pages(
            self.session, COMPLETIONS_PATH, params, CursorPaginator(PROVIDER), stats, max_pages=self.options.max_pages, stop=stop
        )

        unknown: set[str] = set()

        def parse(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
            unknown.update(unknown_fields(records, DOCUMENTED_FIELDS))
            return parse_completions(records, locator, raw_data=self.include_raw_data, custom_fields=self.include_custom_fields)

        table = parse_walk(pages, parse, PROVIDER)
        logger.debug("%s sweep %s..%s: %d records in %d requests", PROVIDER, start, end, table.num_rows, stats.requests)
        return SweepResult(table=table, stats=FetchStats.from_requests(stats, unknown_fields=unknown))


class BindbeeResource(ProviderResource):
    """Bindbee LMS completions (resource key `bindbee`); secrets come in as dagster.EnvVar."""

    base_url: str = Field(default="https://api.bindbee.dev", description="https://api.bindbee.dev or https://api-eu.bindbee.dev.")
    api_key: str = Field(description="Organisation API key, sent as `Authorization: Bearer`.")
    connector_token: str = Field(description="Connector token of the LMS connection (`x-connector-token`).")
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE, description="Records per page (Bindbee maximum 100).")
    include_raw_data: bool = Field(default=False, description="Request and store `raw_data` as JSON text.")
    include_custom_fields: bool = Field(default=False, description="Request and store `custom_fields` as JSON text.")
    requests_per_minute: int = Field(default=200, ge=0, description="Pacing limit per connector token; 0 turns pacing off.")

    def create_client(self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None) -> BindbeeClient:
        limits = [RateLimit(self.requests_per_minute, 60.0)] if self.requests_per_minute else []
        return BindbeeClient(
            self.base_url,
            api_key=self.api_key,
            connector_token=self.connector_token,
            options=self.client_options(self.page_size, limits),
            include_raw_data=self.include_raw_data,
            include_custom_fields=self.include_custom_fields,
            clock=clock,
            transport=transport,
        )
