"""Bindbee unified LMS API: `GET /api/lms/v1/completions`, cursor-paged; its declaration, client and resource."""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.http.pagination import CursorPaginator
from completions_assets.providers.checks import NO_DUPLICATE_IDS
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.declaration import Provider
from completions_assets.providers.durations import parse_durations
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
from completions_assets.providers.resource import ProviderResource
from completions_assets.settings import ConfigurationError

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


def format_filter_time(moment: dt.datetime) -> str:
    """UTC, six fractional digits and Z: `2024-01-01T23:59:59.999999Z`."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sweep_params(
    start: dt.datetime,
    end: dt.datetime,
    page_size: int,
    *,
    raw_data: bool,
    custom_fields: bool,
    expand: str | None = None,
) -> dict[str, str]:
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
    if expand:
        params["expand"] = expand
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


class BindbeeClient(ProviderClient):
    """Plain Bindbee client: one httpx.Client, paced per connector token. Thread-safe."""

    settings: "BindbeeResource"

    def __init__(self, settings: "BindbeeResource", **options: Any) -> None:
        super().__init__(BINDBEE, settings, **options)

    def check_credentials(self) -> None:
        if not self.credentials["api_key"] or not self.credentials["connector_token"]:
            raise ConfigurationError("bindbee: api_key and connector_token are required")

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.credentials['api_key']}",
            "x-connector-token": self.credentials["connector_token"] or "",
        }

    def on_success(self, response: httpx.Response) -> None:
        # Another client on the same connector token spends the same budget; with
        # pacing turned off the headers are ignored too (429s are still retried).
        if not self.pacer.limits:
            return
        try:
            remaining = int(response.headers["X-RateLimit-Remaining"])
            reset = float(response.headers["X-RateLimit-Reset"])
        except (KeyError, ValueError):
            return
        self.pacer.observe_budget(remaining, reset, cap_s=RATE_RESET_CAP_S)

    def sweep_params(self, start: dt.datetime, end: dt.datetime) -> dict[str, str]:
        return sweep_params(
            start,
            end,
            self.settings.page_size,
            raw_data=self.settings.include_raw_data,
            custom_fields=self.settings.include_custom_fields,
            expand=expand_value(include_email=self.settings.include_email) if self.settings.expand_relations else None,
        )

    def parse(self, records: list[dict[str, Any]], locator: RecordLocator) -> pa.Table:
        return parse_completions(
            records,
            locator,
            raw_data=self.settings.include_raw_data,
            custom_fields=self.settings.include_custom_fields,
            include_email=self.settings.include_email,
        )


RATE_RESET_CAP_S = 120.0  # longest pause taken from X-RateLimit-Reset


class BindbeeResource(ProviderResource):
    """One Bindbee connection (connector token): where and how its completions are fetched.

    Its secrets are read through dagster.EnvVar when a step starts."""

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

    def create_client(
        self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None
    ) -> BindbeeClient:
        return BindbeeClient(self, clock=clock, transport=transport)


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
    path="/api/lms/v1/completions",
    paginator=CursorPaginator,
    schema=BINDBEE_SCHEMA,
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
    resource_type=BindbeeResource,
    base_url_env="BINDBEE_BASE_URL",
    # One API key per organisation, one connector token per connected LMS.
    secret_env={"api_key": "BINDBEE_API_KEY", "connector_token": "BINDBEE_CONNECTOR_TOKEN"},
    credential_sets=(("connector_token",),),
    optional_secrets=("api_key",),
    connection_options=("expand_relations", "include_email"),
    day_facts=_day_facts,
)
