"""Bindbee unified LMS API: `GET /api/lms/v1/completions`, cursor-paged; its declaration."""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from completions_assets.http.pacing import RateLimit
from completions_assets.http.pagination import CursorPaginator
from completions_assets.providers.checks import NO_DUPLICATE_IDS
from completions_assets.providers.durations import parse_durations
from completions_assets.providers.provider import FetchSettings, Provider, TimeFilter
from completions_assets.providers.records import (
    UTC_TIMESTAMP,
    RecordLocator,
    column,
    durations,
    json_text,
    reference_ids,
    timestamps,
)
from completions_assets.providers.relations import expand_value, name_columns

MAX_PAGE_SIZE = 100
_MICROSECOND = dt.timedelta(microseconds=1)

BINDBEE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("remote_id", pa.string()),
        ("modified_at", UTC_TIMESTAMP),
        ("user", pa.string()),
        ("course", pa.string()),
        ("content", pa.string()),
        ("score", pa.float64()),
        ("grade", pa.string()),
        ("started_at", UTC_TIMESTAMP),
        ("completed_at", UTC_TIMESTAMP),
        ("time_duration", pa.string()),
        # JSON text; null unless the resource asks for them (include_raw_data /
        # include_custom_fields), so the schema never changes with configuration.
        ("raw_data", pa.string()),
        ("custom_fields", pa.string()),
        # From the expanded relations; null where the LMS served ids only (or expansion is off).
        ("user_name", pa.string()),  # first_name and last_name
        ("user_email", pa.string()),  # only with include_email
        ("course_name", pa.string()),
        ("content_title", pa.string()),
    ]
)
RECORD_FIELDS = frozenset(BINDBEE_SCHEMA.names) - {"user_name", "user_email", "course_name", "content_title"}


def _query(settings: "BindbeeSettings") -> dict[str, str]:
    """The filter's bounds are inclusive, to the microsecond (TIME_FILTER); the rest asks for what is kept."""
    params = {"page_size": str(settings.page_size)}
    if settings.include_raw_data:
        params["include_raw_data"] = "true"
    if settings.include_custom_fields:
        params["include_custom_fields"] = "true"
    if settings.expand_relations:
        params["expand"] = expand_value(include_email=settings.include_email)
    return params


def parse_completions(
    records: Sequence[dict[str, Any]],
    locator: RecordLocator,
    *,
    raw_data: bool = False,
    custom_fields: bool = False,
    include_email: bool = False,
) -> pa.Table:
    """Bindbee completion objects as a BINDBEE_SCHEMA table; unknown fields are ignored.

    A relation may be an id or an expanded object: its id is kept either way, and its names
    (null for an id) go to the name columns.
    """

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
        **name_columns(records, locator, include_email=include_email),
    }
    return pa.Table.from_arrays([columns[name] for name in BINDBEE_SCHEMA.names], schema=BINDBEE_SCHEMA)


class BindbeeSettings(FetchSettings):
    """One Bindbee connection (connector token): where and how its completions are fetched."""

    base_url: str = Field(
        default="https://api.bindbee.dev", description="https://api.bindbee.dev or https://api-eu.bindbee.dev."
    )
    api_key: str | None = Field(
        default=None,
        description="Organisation API key, sent as `Authorization: Bearer` (or its variable in secret_env).",
    )
    connector_token: str | None = Field(
        default=None,
        description="Connector token of the LMS connection, `x-connector-token` (or its variable in secret_env).",
    )
    page_size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE, description="Records per page (Bindbee maximum 100).")
    include_raw_data: bool = Field(default=False, description="Request and store `raw_data` as JSON text.")
    include_custom_fields: bool = Field(default=False, description="Request and store `custom_fields` as JSON text.")
    expand_relations: bool = Field(
        default=True,
        description="Ask for user, course and content expanded (`expand`), with only the name fields used.",
    )
    include_email: bool = Field(
        default=False,
        description="Also ask for and store the user's e-mail address (personal data: off unless needed).",
    )
    requests_per_minute: int = Field(
        default=200, ge=0, description="Pacing limit per connector token; 0 turns pacing off."
    )

    def rate_limits(self) -> Sequence[RateLimit]:
        return [RateLimit(self.requests_per_minute, 60.0)] if self.requests_per_minute else []


def _duration_seconds(raw: pa.Table) -> pa.Array:
    return parse_durations(raw["time_duration"]).seconds


def _day_facts(raw: pa.Table) -> dict[str, int]:
    # Years and months have no fixed length: such durations merge as null seconds. A user served
    # as an id alone (its LMS ignores `expand`, or expansion is off) leaves its row without names.
    names = raw["user_name"] if "user_name" in raw.column_names else pa.nulls(raw.num_rows, pa.string())
    unexpanded = pc.and_(pc.is_valid(raw["user"]), pc.is_null(names))
    return {
        "durations_without_fixed_length": parse_durations(raw["time_duration"]).calendar_rows,
        "bindbee_users_not_expanded": pc.sum(unexpanded).as_py() or 0,
    }


BINDBEE = Provider(
    name="bindbee",
    description="Bindbee LMS completions of the day, as the API serves them.",
    settings=BindbeeSettings,
    path="/api/lms/v1/completions",
    paginator=CursorPaginator,
    time_filter=TimeFilter("completed_at_from", "completed_at_to", "%Y-%m-%dT%H:%M:%S.%fZ", _MICROSECOND, True),
    query=_query,
    schema=BINDBEE_SCHEMA,
    parse=lambda records, locator, settings: parse_completions(
        records,
        locator,
        raw_data=settings.include_raw_data,
        custom_fields=settings.include_custom_fields,
        include_email=settings.include_email,
    ),
    documented_fields=RECORD_FIELDS,
    id_column="id",
    event_column="completed_at",
    version_column="modified_at",
    throttle_statuses=(429,),
    lms_columns={
        "completion_id": "id",
        "user_id": "user",
        "course_id": "course",
        "content_id": "content",
        "started_at": "started_at",
        "completed_at": "completed_at",
        "duration_seconds": _duration_seconds,
        "score": "score",
        "grade": "grade",
        "modified_at": "modified_at",
        "user_name": "user_name",
        "content_title": "content_title",
        "person_id": "user",
        "course_title": "course_name",
        "user_email": "user_email",
    },
    checks=(NO_DUPLICATE_IDS,),
    base_url_env="BINDBEE_BASE_URL",
    # One API key per organisation, one connector token per connected LMS.
    headers={"Authorization": "Bearer {api_key}", "x-connector-token": "{connector_token}"},
    # Another client on the same connector token spends the same budget.
    budget_headers=("X-RateLimit-Remaining", "X-RateLimit-Reset"),
    secret_env={"api_key": "BINDBEE_API_KEY", "connector_token": "BINDBEE_CONNECTOR_TOKEN"},
    credential_sets=(("connector_token",),),
    optional_secrets=("api_key",),
    connection_options=("expand_relations", "include_email"),
    day_facts=_day_facts,
)
