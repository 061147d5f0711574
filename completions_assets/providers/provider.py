"""A provider as data, declared once and read by the client, the assets, their checks and the merge.

A declaration says where the list endpoint is, how it pages and filters by time, what its
records hold, how they map to the unified schema and which credentials a connection needs;
`FetchSettings` (a plain pydantic model) is what a connection may set. The few things that
are code are functions of the declaration: its parser, Nexudus's token flow and the widening
of its time filter; `concurrent_pages` picks the page walk of an offset-paged endpoint.
Nothing here knows Dagster: resource.py makes the settings a Dagster resource.
"""

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.http.pagination import Paginator
from completions_assets.http.redaction import Redactor
from completions_assets.providers.checks import ProviderCheck
from completions_assets.providers.records import RecordLocator

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# A unified column from a raw column: its name, or a function of the raw day.
LmsColumn = str | Callable[[pa.Table], pa.Array | pa.ChunkedArray]
Parse = Callable[[list[dict[str, Any]], RecordLocator, Any], pa.Table]  # (records, locator, settings)
# (base URL, credentials, redactor, clock, throttle statuses) -> the auth flow of every request
MakeAuth = Callable[[httpx.URL, Mapping[str, str | None], Redactor, Clock, tuple[int, ...]], httpx.Auth]


class FetchSettings(BaseModel):
    """Settings every provider's connections share; a provider's own settings extend these."""

    model_config = ConfigDict(frozen=True)

    base_url: str
    page_size: int
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response (per read).")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, the first included.")
    backoff_initial_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles per retry, with jitter."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest backoff delay.")
    retry_after_cap_s: float = Field(
        default=900.0,
        ge=0,
        description="Longest wait honoured from a Retry-After header; a provider asking for more fails the request at once.",
    )
    rate_margin_ms: int = Field(default=1, ge=0, description="Safety margin added to every rate-limit window.")
    window_records: int = Field(
        default=10_000,
        ge=1,
        description="Records a request window is sized to hold, from the density seen so far.",
    )
    max_window_days: int = Field(default=8, ge=1, description="Longest request window, in days (sparse ranges).")
    max_concurrent_requests: int = Field(default=8, ge=1, description="Requests in flight at once (threads).")
    max_records_in_flight: int = Field(
        default=50_000,
        ge=1,
        description="Records fetched but not yet written that a step may hold; fetching waits beyond it.",
    )
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Secret fields read from these environment variables when a step starts "
        "(names only: values never enter the config).",
    )

    def rate_limits(self) -> Sequence[RateLimit]:
        """The pacing limits these settings ask for; none means pacing is off."""
        return ()

    def check(self) -> None:
        """Raises ConfigurationError, before any request, for a value only a client can refuse."""


@dataclass(frozen=True)
class TimeFilter:
    """How a request window [start, end) becomes the endpoint's time filter: two query parameters,
    in UTC, at the filter's granularity (`unit`): the start floored to it, the end ceiled."""

    start_param: str
    end_param: str
    format: str  # strftime of a bound
    unit: dt.timedelta
    end_inclusive: bool  # the end bound names the last unit inside the window, not the first after it

    def params(self, start: dt.datetime, end: dt.datetime, widening: dt.timedelta) -> dict[str, str]:
        low = start.astimezone(dt.timezone.utc) - widening
        high = end.astimezone(dt.timezone.utc) + widening
        low -= (low - _EPOCH) % self.unit
        high += -(high - _EPOCH) % self.unit
        if self.end_inclusive:
            high -= self.unit
        return {self.start_param: low.strftime(self.format), self.end_param: high.strftime(self.format)}


def no_widening(settings: Any) -> dt.timedelta:
    return dt.timedelta(0)


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per provider
class Provider:
    name: str  # resource key, pool, the `provider` value of its rows; its asset is `{name}_completions`
    description: str  # of its asset, shown in the UI
    settings: type[FetchSettings]  # what a connection may set (the resource's fields)
    # The list endpoint: a window's first query is `query(settings)` plus the time filter.
    path: str
    paginator: Callable[[str], Paginator]  # a new page walker, given the provider's name
    time_filter: TimeFilter
    query: Callable[[Any], Mapping[str, str]]
    # Its records: parsed into `schema`; a record belongs to the day its event column falls in,
    # and of two copies of an id the greater version wins.
    schema: pa.Schema
    parse: Parse
    documented_fields: frozenset[str]  # record fields it documents; others are reported, never kept
    id_column: str
    event_column: str
    version_column: str
    # The unified schema: unified column -> source (unlisted columns are null), and its checks.
    lms_columns: Mapping[str, LmsColumn]
    checks: tuple[ProviderCheck, ...]
    # Credentials: secret field -> variable of the `default` connection; a connection names one
    # of `credential_sets`, and the `optional_secrets` fall back to `secret_env`.
    base_url_env: str  # the variable with the base URL of connections that name none
    secret_env: Mapping[str, str]
    credential_sets: tuple[tuple[str, ...], ...]
    optional_secrets: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # templates over the credentials
    auth: MakeAuth | None = None  # a token flow, when headers are not enough
    throttle_statuses: tuple[int, ...] = (429,)  # answers that mean "slow down" (retried after Retry-After)
    budget_headers: tuple[str, str] | None = None  # (remaining, reset epoch): pause when none is left
    widening: Callable[[Any], dt.timedelta] = no_widening  # of each side of the filter (Nexudus)
    # An offset-paged endpoint that reports TotalItems and TotalPages (Nexudus): a window's pages
    # are fetched at once after the first, and a record served twice is kept once.
    concurrent_pages: bool = False
    connection_options: tuple[str, ...] = ()  # other settings a connection may set
    resource_defaults: Callable[[Any], Mapping[str, object]] | None = None  # from COMPLETIONS_*
    day_facts: Callable[[pa.Table], Mapping[str, int]] | None = None  # merge metadata about a raw day
    # A per-connection snapshot asset that names more of each raw row (Nexudus: the enrolments), and
    # how the merge adds its columns to a raw day (given None when the snapshot is missing).
    dimension: str | None = None
    enrich: Callable[[pa.Table, pa.Table | None], pa.Table] | None = None

    @property
    def asset_name(self) -> str:
        return f"{self.name}_completions"

    def window_query(self, settings: Any, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
        """The query of the first page of a request window covering [start, end)."""
        return {**self.query(settings), **self.time_filter.params(start, end, self.widening(settings))}
