"""Nexudus `GET /api/content/coursecompletedlessons`, page-numbered, as Arrow tables."""

import datetime as dt
import itertools
import logging
import random
import threading
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from completions_assets.http.errors import ConfigurationError
from completions_assets.providers.base import (
    ClientOptions,
    FetchStats,
    ProviderClient,
    ProviderResource,
    SweepResult,
    WindowReport,
)
from completions_assets.http.session import HttpSession, RequestStats, build_client, validate_base_url
from completions_assets.providers.nexudus.auth import TOKEN_PATH, NexudusAuth, is_throttled
from completions_assets.http.pagination import Page, PageNumberPaginator, iter_pages, parse_walk
from completions_assets.providers.records import RecordLocator, column, json_text, timestamps, unknown_fields
from completions_assets.http.pacing import Clock, Pacer, RateLimit, SystemClock
from completions_assets.http.redaction import Redactor
from completions_assets.lms.schema import NEXUDUS_SCHEMA
from completions_assets.lms.merge import keep_latest

logger = logging.getLogger(__name__)

PROVIDER = "nexudus"
LESSONS_PATH = "/api/content/coursecompletedlessons"
DEFAULT_MARGIN_MINUTES = 14 * 60 + 1  # the filters' time zone is undocumented: cover any UTC offset
DEFAULT_LIMITS = (RateLimit(1, 0.1), RateLimit(120, 60.0), RateLimit(5000, 3600.0))
_MINUTE = dt.timedelta(minutes=1)


def source_key(column_name: str) -> str:
    """Nexudus field of a raw column: `course_lesson_id` -> `CourseLessonId`."""
    return "".join(part.capitalize() for part in column_name.split("_"))


DOCUMENTED_FIELDS = frozenset({source_key(name) for name in NEXUDUS_SCHEMA.names} | {"LocalizationDetails"})


def request_window(start: dt.datetime, end: dt.datetime, margin_minutes: int) -> tuple[str, str]:
    """Inclusive, minute-resolution filter bounds covering [start, end) widened by the margin."""
    margin = dt.timedelta(minutes=margin_minutes)
    low = start.astimezone(dt.timezone.utc) - margin
    high = end.astimezone(dt.timezone.utc) + margin
    low = low.replace(second=0, microsecond=0)
    if high.second or high.microsecond:
        high = high.replace(second=0, microsecond=0) + _MINUTE
    return low.strftime("%Y-%m-%dT%H:%M"), high.strftime("%Y-%m-%dT%H:%M")


def parse_lessons(records: Sequence[dict[str, Any]], locator: RecordLocator, *, timezone: str = "UTC") -> pa.Table:
    """CourseCompletedLesson records as a NEXUDUS_SCHEMA table (LocalizationDetails and unknown fields dropped)."""
    arrays = []
    for field in NEXUDUS_SCHEMA:
        key = source_key(field.name)
        values = [record.get(key) for record in records]
        if field.name == "custom_fields":
            arrays.append(json_text(values))
        elif pa.types.is_timestamp(field.type):
            arrays.append(timestamps(values, field.name, locator, naive_tz=timezone, required=field.name == "created_on"))
        else:
            arrays.append(column(values, field.type, field.name, locator, required=field.name == "id"))
    return pa.Table.from_arrays(arrays, schema=NEXUDUS_SCHEMA)


class NexudusClient(ProviderClient):
    """Plain Nexudus client: one httpx.Client, one auth flow, paced under every documented limit. Thread-safe."""

    provider = PROVIDER
    schema = NEXUDUS_SCHEMA
    event_column = "created_on"

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timezone: str = "UTC",
        margin_minutes: int = DEFAULT_MARGIN_MINUTES,
        options: ClientOptions | None = None,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options or ClientOptions(rate_limits=DEFAULT_LIMITS)
        if not access_token and not (username and password):
            raise ConfigurationError(PROVIDER, "set access_token, or username and password")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(PROVIDER, f"timezone {timezone!r} is not an IANA time zone") from None
        if margin_minutes < 0:
            raise ConfigurationError(PROVIDER, "margin_minutes must not be negative")
        url = validate_base_url(PROVIDER, base_url)
        self.timezone = timezone
        self.margin_minutes = margin_minutes
        clock = clock or SystemClock()
        redactor = Redactor([access_token, password])
        self.pacer = Pacer(self.options.rate_limits, clock=clock, margin_s=self.options.rate_margin_s)
        self.auth = NexudusAuth(
            url.copy_with(path=url.path.rstrip("/") + TOKEN_PATH), access_token=access_token or None, username=username, password=password,
            redactor=redactor, pacer=self.pacer, clock=clock,
        )
        client = build_client(
            url, headers={}, auth=self.auth, connect_timeout_s=self.options.connect_timeout_s,
            read_timeout_s=self.options.read_timeout_s, max_connections=self.options.max_concurrent_sweeps + 1,
            transport=transport,
        )
        self.session = HttpSession(
            PROVIDER, client, retry=self.options.retry, pacer=self.pacer, clock=clock, redactor=redactor,
            is_throttled=is_throttled, rng=rng,
        )

    def close(self) -> None:
        self.session.close()

    def fetch_sweep(self, start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        request_from, request_to = request_window(start, end, self.margin_minutes)
        params = {
            "page": "1",
            "size": str(self.options.page_size),
            "orderBy": "CreatedOn",
            "dir": "1",
            "from_CourseCompletedLesson_CreatedOn": request_from,
            "to_CourseCompletedLesson_CreatedOn": request_to,
        }
        stats = RequestStats()
        pages = iter_pages(
            self.session, LESSONS_PATH, params, PageNumberPaginator(PROVIDER), stats,
            max_pages=self.options.max_pages, stop=stop,
        )
        first = next(pages, None)  # its TotalItems and TotalPages are cross-checked

        unknown: set[str] = set()

        def parse(records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
            unknown.update(unknown_fields(records, DOCUMENTED_FIELDS))
            return parse_lessons(records, locator, timezone=self.timezone)

        table = parse_walk(itertools.chain([first] if first else [], pages), parse, PROVIDER)
        total_items = _reported(first, "TotalItems")
        self._cross_check(table, first, stats.pages, (request_from, request_to))
        report = WindowReport(request_from, request_to, total_items, pc.count_distinct(table["id"]).as_py())
        # Offset paging serves a record twice when rows shift between pages; it is
        # one record (the latest copy kept). A record skipped by the shift shows
        # up as fewer distinct ids than TotalItems in the report above.
        table = keep_latest(table, ["id"], "updated_on")
        return SweepResult(table=table, stats=FetchStats.from_requests(stats, [report], unknown_fields=unknown))

    def _cross_check(self, table: pa.Table, first: Page | None, pages: int, window: tuple[str, str]) -> None:
        # `dir` is documented three ways: verify the order instead of trusting it (rows get sorted anyway).
        served = table["created_on"].cast(pa.int64()).to_numpy()
        if len(served) > 1 and bool(np.any(served[1:] < served[:-1])):
            logger.warning("%s %s..%s: rows were not served in CreatedOn order", PROVIDER, *window)
        total_pages = _reported(first, "TotalPages")
        if total_pages is not None and pages != max(1, total_pages):
            logger.warning("%s %s..%s: fetched %d pages, TotalPages said %d", PROVIDER, *window, pages, total_pages)


def _reported(page: Page | None, key: str) -> int | None:
    value = page.payload.get(key) if page is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class NexudusResource(ProviderResource):
    """Nexudus course completed lessons (resource key `nexudus`); secrets come in as dagster.EnvVar."""

    base_url: str = Field(default="https://spaces.nexudus.com", description="Nexudus API base URL.")
    access_token: str | None = Field(default=None, description="Static bearer token; if unset, username/password are used.")
    username: str | None = Field(default=None, description="Password grant user (POST {base_url}/api/token).")
    password: str | None = Field(default=None, description="Password grant password.")
    timezone: str = Field(default="UTC", description="IANA zone in which timestamps without an offset are read.")
    page_size: int = Field(default=100, ge=1, le=1000, description="Records per page (`size`).")
    margin_minutes: int = Field(default=DEFAULT_MARGIN_MINUTES, ge=0, description="Widening of each side of the CreatedOn filter.")
    min_interval_ms: int = Field(default=100, ge=0, description="Least time between two requests; 0 turns it off.")
    requests_per_minute: int = Field(default=120, ge=0, description="Pacing limit per minute; 0 turns it off.")
    requests_per_hour: int = Field(default=5000, ge=0, description="Pacing limit per hour; 0 turns it off.")

    def create_client(self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None) -> NexudusClient:
        limits = [
            RateLimit(count, seconds)
            for count, seconds in ((1, self.min_interval_ms / 1000), (self.requests_per_minute, 60.0), (self.requests_per_hour, 3600.0))
            if count and seconds
        ]
        return NexudusClient(
            self.base_url,
            access_token=self.access_token,
            username=self.username,
            password=self.password,
            timezone=self.timezone,
            margin_minutes=self.margin_minutes,
            options=self.client_options(self.page_size, limits),
            clock=clock,
            transport=transport,
        )
