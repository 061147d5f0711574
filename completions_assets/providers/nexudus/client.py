"""Nexudus `GET /api/content/coursecompletedlessons`, page-numbered: its declaration, client and resource."""

import datetime as dt
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.http.pagination import Page, PageNumberPaginator
from completions_assets.http.session import user_agent
from completions_assets.lms.dedupe import keep_latest
from completions_assets.providers.checks import MATCHES_REPORTED_TOTAL
from completions_assets.providers.client import MAX_PAGES, ProviderClient
from completions_assets.providers.declaration import Provider
from completions_assets.providers.nexudus.auth import TOKEN_PATH, NexudusAuth
from completions_assets.providers.nexudus.enrolments import MEMBERS, with_enrolments
from completions_assets.providers.nexudus.pages import PageWalk, walk_pages
from completions_assets.providers.planning import Span, WindowTurn
from completions_assets.providers.records import UTC_TIMESTAMP, RecordLocator, column, json_text, timestamps
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import FetchStats, SweepResult, WindowReport
from completions_assets.settings import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_MARGIN_MINUTES = 14 * 60 + 1  # the filters' time zone is undocumented: cover any UTC offset
# Nexudus throttles with 409 (+ Retry-After) "for legacy reasons", not only 429;
# nothing the client sends can otherwise conflict.
THROTTLE_STATUSES = (409, 429)
_MINUTE = dt.timedelta(minutes=1)

NEXUDUS_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("unique_id", pa.string()),
        ("course_lesson_id", pa.int64()),
        ("course_lesson_title", pa.string()),
        ("course_member_id", pa.int64()),
        ("course_member_coworker_full_name", pa.string()),
        ("course_member_coworker_company_name", pa.string()),
        ("course_member_coworker_team_names", pa.string()),
        ("created_on", UTC_TIMESTAMP),
        ("updated_on", UTC_TIMESTAMP),
        ("updated_by", pa.string()),
        ("is_new", pa.bool_()),
        ("system_id", pa.string()),
        ("to_string_text", pa.string()),
        ("custom_fields", pa.string()),
    ]
)


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
            arrays.append(
                timestamps(values, field.name, locator, naive_tz=timezone, required=field.name == "created_on")
            )
        else:
            arrays.append(column(values, field.type, field.name, locator, required=field.name == "id"))
    return pa.Table.from_arrays(arrays, schema=NEXUDUS_SCHEMA)


class NexudusClient(ProviderClient):
    """Plain Nexudus client: one httpx.Client, one auth flow, paced under every documented limit. Thread-safe."""

    settings: "NexudusResource"

    def __init__(self, settings: "NexudusResource", **options: Any) -> None:
        try:
            ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"nexudus: timezone {settings.timezone!r} is not an IANA time zone") from None
        super().__init__(NEXUDUS, settings, **options)
        self.page_pool = ThreadPoolExecutor(settings.max_concurrent_requests, thread_name_prefix="nexudus-page")

    def name_requests(self, what: str) -> None:
        """Adds `what` to the User-Agent of this client's requests, token grants included, so the
        provider's log (and the sandbox's) tells apart what one process fetches in different turns."""
        agent = f"{user_agent()} {what}"
        self.session.client.headers["User-Agent"] = agent
        self.token_auth.user_agent = agent

    def close(self) -> None:
        self.page_pool.shutdown(wait=False, cancel_futures=True)
        super().close()

    def window_concurrency(self) -> int:
        # Pages run concurrently within a window; a second window overlaps the first one's tail.
        return min(2, self.settings.max_concurrent_requests)

    def first_windows(self) -> tuple[int, dt.timedelta]:
        # One long window: its first page's TotalItems tells whether to cut it up, for one request.
        return 1, dt.timedelta(days=self.settings.max_window_days)

    def window_target(self) -> int:
        # Pages, not windows, run at once: the earliest window may fill the budget by itself.
        return min(self.settings.window_records, self.settings.max_records_in_flight)

    def fetch_sweep(self, span: Span, turn: WindowTurn, directory: Path) -> SweepResult:
        params = self.sweep_params(span.start, span.end)
        unknown: set[str] = set()
        walk = PageWalk(
            self.session,
            NEXUDUS.path,
            params,
            self.settings.page_size,
            NEXUDUS.name,
            MAX_PAGES,
            seconds=span.seconds + 2 * 60 * self.settings.margin_minutes,
        )
        with self.window_rows(span, turn, directory) as rows:
            served, first, stats = walk_pages(
                walk,
                span,
                self.page_pool,
                self.settings.max_concurrent_requests,
                turn,
                self.checked_parser(unknown),
                rows,
            )
        window = (params["from_CourseCompletedLesson_CreatedOn"], params["to_CourseCompletedLesson_CreatedOn"])
        self._cross_check(served, first, stats.pages, window)
        report = WindowReport(
            *window, _reported(first, "TotalItems"), pc.count_distinct(served["id"]).as_py(), stats.requests
        )
        return SweepResult(rows.spilled(), FetchStats.from_requests(stats, [report], unknown_fields=unknown))

    def finish_window(self, table: pa.Table) -> pa.Table:
        # Offset paging serves a record twice when rows shift between pages; it is
        # one record (the latest copy kept). A record skipped by the shift shows
        # up as fewer distinct ids than TotalItems in the window's report.
        if pc.count_distinct(table["id"]).as_py() < table.num_rows:  # no copy when nothing was served twice
            return keep_latest(table, [NEXUDUS.id_column], NEXUDUS.version_column)
        return table

    def check_credentials(self) -> None:
        given = self.credentials
        if not given["access_token"] and not (given["username"] and given["password"]):
            raise ConfigurationError("nexudus: set access_token, or username and password")

    def secrets(self) -> Sequence[str | None]:
        return (self.credentials["access_token"], self.credentials["password"])

    def auth(self) -> NexudusAuth:
        self.token_auth = NexudusAuth(
            self.base_url.copy_with(path=self.base_url.path.rstrip("/") + TOKEN_PATH),
            access_token=self.credentials["access_token"] or None,
            username=self.credentials["username"],
            password=self.credentials["password"],
            redactor=self.redactor,
            clock=self.clock,
            throttle_statuses=THROTTLE_STATUSES,
        )
        return self.token_auth

    def sweep_params(self, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
        request_from, request_to = request_window(start, end, self.settings.margin_minutes)
        return {
            "page": "1",
            "size": str(self.settings.page_size),
            "orderBy": "CreatedOn",
            "dir": "1",
            "from_CourseCompletedLesson_CreatedOn": request_from,
            "to_CourseCompletedLesson_CreatedOn": request_to,
        }

    def parse(self, records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
        return parse_lessons(records, locator, timezone=self.settings.timezone)

    def _cross_check(self, served: pa.Table, first: Page | None, pages: int, window: tuple[str, str]) -> None:
        # `dir` is documented three ways: verify the order instead of trusting it (rows get sorted anyway).
        times = served["created_on"].cast(pa.int64()).to_numpy()
        if len(times) > 1 and bool(np.any(times[1:] < times[:-1])):
            logger.warning("nexudus %s..%s: rows were not served in CreatedOn order", *window)
        total_pages = _reported(first, "TotalPages")
        if total_pages is not None and pages != max(1, total_pages):
            logger.warning("nexudus %s..%s: fetched %d pages, TotalPages said %d", *window, pages, total_pages)


def _reported(page: Page | None, key: str) -> int | None:
    value = page.payload.get(key) if page is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class NexudusResource(ProviderResource):
    """One Nexudus account: where and how its completed lessons are fetched.

    Its secrets are read through dagster.EnvVar when a step starts."""

    base_url: str = Field(default="https://spaces.nexudus.com", description="Nexudus API base URL.")
    access_token: str | None = Field(
        default=None, description="Static bearer token; if unset, username/password are used."
    )
    username: str | None = Field(default=None, description="Password grant user (POST {base_url}/api/token).")
    password: str | None = Field(default=None, description="Password grant password.")
    timezone: str = Field(default="UTC", description="IANA zone in which timestamps without an offset are read.")
    page_size: int = Field(default=100, ge=1, le=1000, description="Records per page (`size`).")
    window_records: int = Field(
        default=50_000,
        ge=1,
        description="Records a request window is sized to keep (the widening's are dropped as pages "
        "arrive): long windows spread the widening over more days.",
    )
    margin_minutes: int = Field(
        default=DEFAULT_MARGIN_MINUTES, ge=0, description="Widening of each side of the CreatedOn filter."
    )
    min_interval_ms: int = Field(default=100, ge=0, description="Least time between two requests; 0 turns it off.")
    requests_per_minute: int = Field(default=120, ge=0, description="Pacing limit per minute; 0 turns it off.")
    requests_per_hour: int = Field(default=5000, ge=0, description="Pacing limit per hour; 0 turns it off.")

    def rate_limits(self) -> Sequence[RateLimit]:
        limits = ((1, self.min_interval_ms / 1000), (self.requests_per_minute, 60.0), (self.requests_per_hour, 3600.0))
        return [RateLimit(count, seconds) for count, seconds in limits if count and seconds]

    def create_client(
        self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None
    ) -> NexudusClient:
        return NexudusClient(self, clock=clock, transport=transport)


NEXUDUS = Provider(
    name="nexudus",
    description="Nexudus course completed lessons of the day, as the API serves them.",
    path="/api/content/coursecompletedlessons",
    paginator=PageNumberPaginator,
    schema=NEXUDUS_SCHEMA,
    documented_fields=DOCUMENTED_FIELDS,
    id_column="id",
    event_column="created_on",
    version_column="updated_on",
    throttle_statuses=THROTTLE_STATUSES,
    lms_columns={
        "completion_id": "id",
        # The list endpoint exposes no person id: the enrolment id stands in; the person and the
        # course come from the enrolment snapshot (`enrich`).
        "user_id": "course_member_id",
        "user_name": "course_member_coworker_full_name",
        "course_id": "member_course_id",
        "content_id": "course_lesson_id",
        "content_title": "course_lesson_title",
        "completed_at": "created_on",
        "modified_at": "updated_on",
        "person_id": "member_coworker_id",
        "course_title": "member_course_title",
        "company_name": "course_member_coworker_company_name",
        "team_names": "course_member_coworker_team_names",
    },
    checks=(MATCHES_REPORTED_TOTAL,),
    resource_type=NexudusResource,
    base_url_env="NEXUDUS_BASE_URL",
    secret_env={"access_token": "NEXUDUS_ACCESS_TOKEN", "username": "NEXUDUS_USERNAME", "password": "NEXUDUS_PASSWORD"},
    credential_sets=(("access_token",), ("username", "password")),
    connection_options=("timezone",),
    resource_defaults=lambda settings: {"timezone": settings.timezone},
    dimension=MEMBERS,
    enrich=with_enrolments,
)
