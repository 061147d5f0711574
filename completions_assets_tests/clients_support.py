"""Helpers of the provider-client tests: scripted HTTP replies and a live sandbox."""

import bisect
import contextlib
import datetime as dt
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from completions_assets.http.pacing import Clock, ManualClock, Pacer, RateLimit
from completions_assets.http.redaction import Redactor
from completions_assets.http.session import HttpSession
from completions_assets.partitions import PartitionDay, partition_days
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.resource import BindbeeResource, NexudusResource, ProviderResource
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class Script:
    """A MockTransport that answers with scripted replies in order and records requests."""

    replies: list[Reply]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


def session(
    script: Script, *, max_attempts: int = 4, limits: tuple[RateLimit, ...] = (), **kwargs: Any
) -> tuple[HttpSession, ManualClock]:
    clock = ManualClock()
    client = httpx.Client(base_url="https://api.example.test", transport=script.transport())
    http = HttpSession(
        "acme",
        client,
        retry=retry_settings(max_attempts=max_attempts, backoff_initial_s=1.0, backoff_max_s=8.0),
        pacer=Pacer(limits, clock=clock),
        clock=clock,
        redactor=Redactor(["SECRET-acme-token-5678"]),
        rng=random.Random(1),
        **kwargs,
    )
    return http, clock


def retry_settings(**settings: Any) -> SimpleNamespace:
    """The retry fields of a provider resource, with its defaults."""
    fields = ProviderResource.model_fields
    names = ("max_attempts", "backoff_initial_s", "backoff_max_s", "retry_after_cap_s")
    return SimpleNamespace(**{name: fields[name].default for name in names} | settings)


UNPACED = {
    "bindbee": {"requests_per_minute": 0},
    "nexudus": {"min_interval_ms": 0, "requests_per_minute": 0, "requests_per_hour": 0},
}


def fast_settings(provider: str, **overrides: Any) -> dict[str, Any]:
    """Resource settings for tests: no pacing, quick retries (slept on a ManualClock anyway)."""
    return {
        "max_attempts": 4,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 4.0,
        "read_timeout_s": 5.0,
        **UNPACED[provider],
        **overrides,
    }


# --- the sandbox's records as expected rows, built per record with plain Python ---

UTC = dt.timezone.utc


def utc(text: str | None, zone: str = "UTC") -> dt.datetime | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(UTC)


def _ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


# What an expanding client asks for (written out here, not read from the product).
NAME_FIELDS = {"user": ("first_name", "last_name"), "course": ("name",), "content": ("title",)}


def _name(value: Any, *fields: str) -> str | None:
    if not isinstance(value, dict):
        return None
    return " ".join(value[f] for f in fields if value.get(f)) or None


def bindbee_row(record: dict[str, Any], *, email: bool = False) -> dict[str, Any]:
    """The raw row of a record as served, expanded or not (names stay null for ids)."""
    return {
        "id": record["id"],
        "remote_id": record["remote_id"],
        "modified_at": utc(record["modified_at"]),
        "user": _ref(record["user"]),
        "course": _ref(record["course"]),
        "content": _ref(record["content"]),
        "score": None if record["score"] is None else float(record["score"]),
        "grade": record["grade"],
        "started_at": utc(record["started_at"]),
        "completed_at": utc(record["completed_at"]),
        "time_duration": record["time_duration"],
        "raw_data": None,
        "custom_fields": None,
        "user_name": _name(record["user"], "first_name", "last_name"),
        "user_email": _name(record["user"], "email_address") if email else None,
        "course_name": _name(record["course"], "name"),
        "content_title": _name(record["content"], "title"),
    }


def nexudus_row(record: dict[str, Any], zone: str = "UTC") -> dict[str, Any]:
    row = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in record.items()}
    row.pop("localization_details")
    row["created_on"] = utc(record["CreatedOn"], zone)
    row["updated_on"] = utc(record["UpdatedOn"], zone)
    row["custom_fields"] = _json(record["CustomFields"])
    return row


class Oracle:
    """Every visible record of a provider as the client must return it, sorted by (event time, id)."""

    def __init__(self, sandbox: Sandbox, provider: str, zone: str = "UTC", *, expand: bool = True) -> None:
        self.sandbox, self.provider = sandbox, provider
        if provider == "bindbee":
            rows = [bindbee_row(r) for r in sandbox.dataset.records("bindbee", expand=NAME_FIELDS if expand else None)]
            self.event = "completed_at"
        else:
            rows = [nexudus_row(r, zone) for r in sandbox.dataset.records("nexudus")]
            self.event = "created_on"
        self.rows = sorted(rows, key=lambda r: (r[self.event], r["id"]))
        self._times = [r[self.event] for r in self.rows]

    def rows_in(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        rows = self.rows[bisect.bisect_left(self._times, start) : bisect.bisect_left(self._times, end)]
        truth = self.sandbox.dataset.ground_truth(self.provider, start, end)
        assert sorted(str(r["id"]) for r in rows) == sorted(truth)  # the oracle agrees with the sandbox
        return rows


@contextlib.contextmanager
def running_sandbox(**config: Any) -> Iterator[Sandbox]:
    settings: dict[str, Any] = {
        "seed": 7,
        "start_date": dt.date(2024, 1, 1),
        "days": 40,
        "records_per_day": 200,
        "now": SANDBOX_NOW,
    }
    settings.update(config)
    with start_sandbox(SandboxConfig(**settings)) as sandbox:
        yield sandbox


SANDBOX_NOW = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def update_faults(sandbox: Sandbox, faults: Mapping[str, ProviderFaults]) -> None:
    """`sandbox.update(**faults)` for providers named at run time, e.g. `{provider: ProviderFaults(...)}`."""
    unknown = sorted(set(faults) - {"bindbee", "nexudus"})
    if unknown:
        raise TypeError(f"no sandbox provider named {unknown}")
    sandbox.update(bindbee=faults.get("bindbee"), nexudus=faults.get("nexudus"))


def bindbee_client(sandbox: Sandbox, *, clock: Clock | None = None, **options: Any) -> ProviderClient:
    resource = BindbeeResource(
        base_url=sandbox.base_url,
        api_key=sandbox.credentials["BINDBEE_API_KEY"],
        connector_token=sandbox.credentials["BINDBEE_CONNECTOR_TOKEN"],
        **fast_settings("bindbee", **options),
    )
    return resource.create_client(clock=clock or ManualClock())


def nexudus_client(
    sandbox: Sandbox, *, clock: Clock | None = None, timezone: str = "UTC", static: bool = False, **options: Any
) -> ProviderClient:
    credentials = sandbox.credentials
    auth: dict[str, Any]  # unpacked into NexudusResource next to its int and float fields
    if static:
        auth = {"access_token": credentials["NEXUDUS_ACCESS_TOKEN"]}
    else:
        auth = {"username": credentials["NEXUDUS_USERNAME"], "password": credentials["NEXUDUS_PASSWORD"]}
    resource = NexudusResource(
        base_url=sandbox.base_url, timezone=timezone, **fast_settings("nexudus", **options), **auth
    )
    return resource.create_client(clock=clock or ManualClock())


def days_between(first: str, last: str, zone: str = "UTC") -> list[PartitionDay]:
    return partition_days(dt.date.fromisoformat(first), dt.date.fromisoformat(last), ZoneInfo(zone))
