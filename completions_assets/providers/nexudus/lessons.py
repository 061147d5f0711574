"""Nexudus `GET /api/content/coursecompletedlessons`, page-numbered, filtered by the minute: its declaration."""

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import pyarrow as pa
from pydantic import Field

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.http.pagination import PageNumberPaginator
from completions_assets.http.redaction import Redactor
from completions_assets.providers.checks import MATCHES_REPORTED_TOTAL
from completions_assets.providers.nexudus.auth import TOKEN_PATH, NexudusAuth
from completions_assets.providers.nexudus.enrolments import MEMBERS, with_enrolments
from completions_assets.providers.provider import FetchSettings, Provider, TimeFilter
from completions_assets.providers.records import UTC_TIMESTAMP, RecordLocator, column, json_text, timestamps
from completions_assets.settings import ConfigurationError

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


TIME_FILTER = TimeFilter(
    "from_CourseCompletedLesson_CreatedOn", "to_CourseCompletedLesson_CreatedOn", "%Y-%m-%dT%H:%M", _MINUTE, False
)


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


def _checked_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"nexudus: timezone {name!r} is not an IANA time zone") from None


class NexudusSettings(FetchSettings):
    """One Nexudus account: where and how its completed lessons are fetched."""

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

    def check(self) -> None:
        _checked_zone(self.timezone)


def _auth(
    base_url: httpx.URL,
    credentials: Mapping[str, str | None],
    redactor: Redactor,
    clock: Clock,
    throttle_statuses: tuple[int, ...],
) -> NexudusAuth:
    return NexudusAuth(
        base_url.copy_with(path=base_url.path.rstrip("/") + TOKEN_PATH),
        access_token=credentials["access_token"] or None,
        username=credentials["username"],
        password=credentials["password"],
        redactor=redactor,
        clock=clock,
        throttle_statuses=throttle_statuses,
    )


NEXUDUS = Provider(
    name="nexudus",
    description="Nexudus course completed lessons of the day, as the API serves them.",
    path="/api/content/coursecompletedlessons",
    settings=NexudusSettings,
    paginator=PageNumberPaginator,
    time_filter=TIME_FILTER,
    query=lambda settings: {"page": "1", "size": str(settings.page_size), "orderBy": "CreatedOn", "dir": "1"},
    widening=lambda settings: dt.timedelta(minutes=settings.margin_minutes),
    concurrent_pages=True,
    schema=NEXUDUS_SCHEMA,
    parse=lambda records, locator, settings: parse_lessons(records, locator, timezone=settings.timezone),
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
    auth=_auth,
    base_url_env="NEXUDUS_BASE_URL",
    secret_env={"access_token": "NEXUDUS_ACCESS_TOKEN", "username": "NEXUDUS_USERNAME", "password": "NEXUDUS_PASSWORD"},
    credential_sets=(("access_token",), ("username", "password")),
    connection_options=("timezone",),
    resource_defaults=lambda settings: {"timezone": settings.timezone},
    dimension=MEMBERS,
    enrich=with_enrolments,
)
