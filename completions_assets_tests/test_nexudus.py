"""Nexudus client: widened minute filters, parsing, page checks, auth flow, and every record over HTTP."""

import datetime as dt
import itertools
import logging
import math
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from completions_assets.http.errors import AuthenticationError, PaginationLoopError, PayloadError, RateLimitError
from completions_assets.http.pacing import ManualClock, SystemClock
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus.lessons import (
    NEXUDUS,
    NEXUDUS_SCHEMA,
    NexudusSettings,
    parse_lessons,
    source_key,
)
from completions_assets.providers.records import RecordLocator
from completions_assets.providers.resource import NexudusResource
from completions_assets.sandbox import Sandbox
from completions_assets.sandbox.config import ProviderFaults
from completions_assets_tests.clients_support import (
    Oracle,
    Reply,
    Script,
    days_between,
    fast_settings,
    json_reply,
    nexudus_client,
    running_sandbox,
)

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox() as running:
        yield running


def test_raw_columns_come_from_pascal_case_fields() -> None:
    assert [source_key(name) for name in NEXUDUS_SCHEMA.names[:3]] == ["Id", "UniqueId", "CourseLessonId"]
    assert source_key("course_member_coworker_team_names") == "CourseMemberCoworkerTeamNames"
    assert source_key("to_string_text") == "ToStringText"


@pytest.mark.parametrize(
    ("start", "end", "margin", "expected"),
    [
        ("2024-01-10T00:00:00", "2024-01-11T00:00:00", 841, ("2024-01-09T09:59", "2024-01-11T14:01")),
        ("2024-01-10T00:00:00", "2024-01-11T00:00:00", 0, ("2024-01-10T00:00", "2024-01-11T00:00")),
        ("2024-01-10T00:00:30", "2024-01-11T00:00:00.5", 0, ("2024-01-10T00:00", "2024-01-11T00:01")),
        ("2024-03-10T05:00:00", "2024-03-11T04:00:00", 60, ("2024-03-10T04:00", "2024-03-11T05:00")),
    ],
)
def test_filters_are_widened_floored_and_ceiled_to_minutes(
    start: str, end: str, margin: int, expected: tuple[str, str]
) -> None:
    bounds = (dt.datetime.fromisoformat(start).replace(tzinfo=UTC), dt.datetime.fromisoformat(end).replace(tzinfo=UTC))
    params = NEXUDUS.window_query(NexudusSettings(margin_minutes=margin), *bounds)
    assert (params["from_CourseCompletedLesson_CreatedOn"], params["to_CourseCompletedLesson_CreatedOn"]) == expected


RECORD = {
    "CourseLessonId": 11,
    "CourseLessonTitle": "Lesson",
    "CourseMemberId": 22,
    "CourseMemberCoworkerFullName": "Nuño",
    "CourseMemberCoworkerCompanyName": None,
    "CourseMemberCoworkerTeamNames": "A, B",
    "Id": 87654321,
    "UpdatedOn": "2025-01-15T10:30:00.1234567Z",
    "CreatedOn": "2025-01-10T08:00:00",
    "UniqueId": "a1b2",
    "UpdatedBy": "admin@example.com",
    "IsNew": False,
    "SystemId": None,
    "ToStringText": "CourseCompletedLesson Example",
    "LocalizationDetails": {"x": 1},
    "CustomFields": {"b": "ü", "a": 1},
    "SomethingNew": [1, 2],
}


def test_parse_maps_fields_and_reads_naive_times_in_the_configured_zone() -> None:
    row = parse_lessons([RECORD], RecordLocator("nexudus"), timezone="Asia/Tokyo").to_pylist()[0]
    assert row == {
        "id": 87654321,
        "unique_id": "a1b2",
        "course_lesson_id": 11,
        "course_lesson_title": "Lesson",
        "course_member_id": 22,
        "course_member_coworker_full_name": "Nuño",
        "course_member_coworker_company_name": None,
        "course_member_coworker_team_names": "A, B",
        "created_on": dt.datetime(2025, 1, 9, 23, 0, tzinfo=UTC),  # 08:00 in Tokyo
        "updated_on": dt.datetime(2025, 1, 15, 10, 30, 0, 123456, tzinfo=UTC),
        "updated_by": "admin@example.com",
        "is_new": False,
        "system_id": None,
        "to_string_text": "CourseCompletedLesson Example",
        "custom_fields": '{"a": 1, "b": "ü"}',
    }


def _records(page: int, ids: list[int]) -> list[dict[str, Any]]:
    return [RECORD | {"Id": i, "CreatedOn": f"2025-01-10T{8 + page:02d}:00:{n:02d}Z"} for n, i in enumerate(ids)]


def _page(page: int, ids: list[int], *, has_next: bool, total: int = 4, **meta: Any) -> httpx.Response:
    body = {
        "Records": _records(page, ids),
        "CurrentPage": page,
        "HasNextPage": has_next,
        "TotalItems": total,
        "TotalPages": 2,
        "PageSize": 2,
    } | meta
    return json_reply(200, body)


TOKEN = json_reply(200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600, "refresh_token": "ref-1"})


def _client(script: Script, **auth: Any) -> ProviderClient:
    credentials = auth or {"username": "user@example.com", "password": "pw-123456"}
    resource = NexudusResource(**fast_settings("nexudus", page_size=2), **credentials)
    return resource.create_client(clock=ManualClock(), transport=script.transport())


def _fetch(client: ProviderClient) -> list[Any]:
    return list(client.fetch_days(days_between("2025-01-10", "2025-01-10")))


def test_pages_are_walked_with_sort_order_and_widened_filters() -> None:
    script = Script([TOKEN, _page(1, [1, 2], has_next=True), _page(2, [3, 4], has_next=False)])
    (batch,) = _fetch(_client(script))
    assert batch.table["id"].to_pylist() == [1, 2, 3, 4]
    token_request, first, second = script.requests
    assert urllib.parse.parse_qs(token_request.content.decode()) == {
        "grant_type": ["password"],
        "username": ["user@example.com"],
        "password": ["pw-123456"],
    }
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(first.url.params) == {
        "page": "1",
        "size": "2",
        "orderBy": "CreatedOn",
        "dir": "1",
        "from_CourseCompletedLesson_CreatedOn": "2025-01-09T09:59",
        "to_CourseCompletedLesson_CreatedOn": "2025-01-11T14:01",
    }
    assert second.url.params["page"] == "2" and first.headers["Authorization"] == "Bearer tok-1"
    assert batch.stats.windows[0].total_items == 4 and batch.stats.windows[0].distinct_fetched == 4


def test_rows_served_out_of_order_are_reported_and_sorted(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(
        [
            TOKEN,
            _page(1, [1, 2], has_next=True),
            json_reply(
                200,
                {
                    "Records": _records(0, [3, 4]),
                    "CurrentPage": 2,
                    "HasNextPage": False,
                    "TotalItems": 4,
                    "TotalPages": 2,
                },
            ),
        ]
    )
    with caplog.at_level(logging.WARNING):
        (batch,) = _fetch(_client(script))
    assert "not served in created_on order" in caplog.text
    assert batch.table["id"].to_pylist() == [3, 4, 1, 2]  # sorted by CreatedOn


@pytest.mark.parametrize(
    ("second", "error", "message"),
    [
        (_page(1, [1, 2], has_next=True), PaginationLoopError, "asked for page 2, got CurrentPage 1"),
        (_page(2, [1, 2], has_next=True), PaginationLoopError, "same records as the previous page"),
        (
            json_reply(200, {"WasSuccessful": False, "Message": "Temporary database timeout", "Errors": []}),
            PayloadError,
            "WasSuccessful is false: Temporary database timeout",
        ),
        (json_reply(200, {"Value": None}), PayloadError, "field 'Records' is missing"),
        (
            json_reply(200, {"Records": [RECORD | {"CreatedOn": None}], "CurrentPage": 2, "HasNextPage": False}),
            PayloadError,
            "record 0: field 'created_on' is missing",
        ),
        (
            json_reply(200, {"Records": [RECORD | {"Id": "x"}], "CurrentPage": 2, "HasNextPage": False}),
            PayloadError,
            "record 0: field 'id' is not int64",
        ),
        (json_reply(200, {"Records": [RECORD], "CurrentPage": 2}), PayloadError, "'HasNextPage' is None"),
    ],
)
def test_bad_second_pages_are_errors(second: httpx.Response, error: type, message: str) -> None:
    script = Script([TOKEN, _page(1, [1, 2], has_next=True), second])
    with pytest.raises(error, match=r"^nexudus: page 2 \(GET https://spaces.nexudus.com/.*page=2.*" + message):
        _fetch(_client(script))


UNAUTHORIZED = json_reply(401, {"Message": "Authorization has been denied for this request."})
BAD_GRANT = json_reply(400, {"error": "invalid_grant", "error_description": "The user name or password is incorrect."})


@pytest.mark.parametrize(
    ("replies", "grants"),
    [
        # expired token: refresh grant, then the request is resent once
        ([TOKEN, UNAUTHORIZED, TOKEN, _page(1, [1], has_next=False, total=1)], ["password", "refresh_token"]),
        # refresh token refused too: fall back to the password grant
        (
            [TOKEN, UNAUTHORIZED, BAD_GRANT, TOKEN, _page(1, [1], has_next=False, total=1)],
            ["password", "refresh_token", "password"],
        ),
    ],
)
def test_a_401_renews_the_token_once(replies: list[Reply], grants: list[str]) -> None:
    script = Script(replies)
    (batch,) = _fetch(_client(script))
    assert batch.table["id"].to_pylist() == [1]
    sent = [urllib.parse.parse_qs(r.content.decode())["grant_type"][0] for r in script.requests if r.method == "POST"]
    assert sent == grants


def test_a_401_after_renewal_fails() -> None:
    script = Script([TOKEN, UNAUTHORIZED, TOKEN, UNAUTHORIZED])
    with pytest.raises(AuthenticationError, match="nexudus: HTTP 401"):
        _fetch(_client(script))
    assert len(script.requests) == 4


def test_refused_credentials_fail_at_once_without_the_password() -> None:
    script = Script([BAD_GRANT])
    with pytest.raises(AuthenticationError) as caught:
        _fetch(_client(script))
    assert "The user name or password is incorrect" in str(caught.value) and "pw-123456" not in str(caught.value)
    assert len(script.requests) == 1


def test_a_static_token_without_credentials_fails_on_401() -> None:
    script = Script([UNAUTHORIZED])
    with pytest.raises(AuthenticationError, match="Authorization has been denied"):
        _fetch(_client(script, access_token="static-token-1"))
    assert script.requests[0].headers["Authorization"] == "Bearer static-token-1"


# --- over real HTTP against the sandbox ---


@pytest.mark.parametrize(
    ("first", "last", "zone", "static"),
    [
        ("2024-01-10", "2024-01-10", "UTC", False),
        ("2024-01-01", "2024-01-31", "UTC", True),
        ("2024-01-10", "2024-01-10", "America/New_York", False),
        ("2024-01-01", "2024-01-31", "America/New_York", False),
    ],
)
def test_every_record_of_the_range_and_nothing_else(
    sandbox: Sandbox, first: str, last: str, zone: str, static: bool
) -> None:
    with nexudus_client(sandbox, static=static) as client:
        batches = list(client.fetch_days(days_between(first, last, zone)))
    assert [b.day for b in batches] == days_between(first, last, zone)
    oracle = Oracle(sandbox, "nexudus")
    for batch in batches:
        assert batch.table.schema == NEXUDUS_SCHEMA
        assert batch.table.to_pylist() == oracle.rows_in(batch.day.start, batch.day.end)
        assert all(w.total_items == w.distinct_fetched for w in batch.stats.windows)


@pytest.mark.parametrize(
    ("filter_tz", "naive"), [("Asia/Tokyo", False), ("Pacific/Auckland", True), ("America/Los_Angeles", True)]
)
@pytest.mark.parametrize("zone", ["UTC", "Pacific/Auckland"])
def test_a_filter_zone_other_than_utc_loses_nothing(filter_tz: str, naive: bool, zone: str) -> None:
    with running_sandbox(days=12, nexudus_filter_tz=filter_tz, nexudus_naive_timestamps=naive) as sandbox:
        with nexudus_client(sandbox, timezone=filter_tz if naive else "UTC") as client:
            batches = list(client.fetch_days(days_between("2024-01-01", "2024-01-10", zone)))
        oracle = Oracle(sandbox, "nexudus", filter_tz if naive else "UTC")
        for batch in batches:
            assert batch.table.to_pylist() == oracle.rows_in(batch.day.start, batch.day.end)


def test_a_range_costs_one_request_per_page_of_each_widened_window(sandbox: Sandbox) -> None:
    before = sandbox.stats()["nexudus"]["requests"]
    with nexudus_client(sandbox, max_window_days=8, max_concurrent_requests=4) as client:
        batches = list(client.fetch_days(days_between("2024-01-01", "2024-01-31")))
    reports = list({(w.request_from, w.request_to): w for b in batches for w in b.stats.windows}.values())
    totals = [w.total_items for w in reports if w.total_items is not None]
    assert len(totals) == len(reports)  # Nexudus reports TotalItems for every window
    expected = sum(max(1, math.ceil(total / 100)) for total in totals)
    assert sum(w.requests for w in reports) == expected == sandbox.stats()["nexudus"]["requests"] - before


def test_an_expired_token_is_renewed_mid_walk() -> None:
    # Each page takes >= 100 ms and a token lives 250 ms: it expires during the walk.
    with running_sandbox(days=12, token_lifetime_s=0.25) as sandbox:
        sandbox.update(nexudus=ProviderFaults(latency_ms=100))
        with nexudus_client(sandbox, max_concurrent_requests=1) as client:  # one page after another
            (batch,) = client.fetch_days(days_between("2024-01-05", "2024-01-05"))
            assert client.token_auth.grants >= 2
        assert batch.table.to_pylist() == Oracle(sandbox, "nexudus").rows_in(batch.day.start, batch.day.end)
        assert sandbox.stats()["nexudus"]["statuses"].get("401", 0) == client.token_auth.grants - 1


def test_pacing_keeps_a_rate_limited_fetch_free_of_409() -> None:
    with running_sandbox(days=12, rate_limits=True) as sandbox:
        token = sandbox.credentials["NEXUDUS_ACCESS_TOKEN"]
        # Default pacing; 8 pages at under 10 per second.
        resource = NexudusResource(base_url=sandbox.base_url, access_token=token, page_size=40)
        with resource.create_client(clock=SystemClock()) as client:
            (batch,) = client.fetch_days(days_between("2024-01-05", "2024-01-05"))
        statuses = sandbox.stats()["nexudus"]["statuses"]
        assert set(statuses) == {"200"} and statuses["200"] == batch.stats.requests >= 8
        arrivals = [r.arrived for r in sandbox.request_log() if r.bucket == "nexudus"]
        assert len(arrivals) == batch.stats.requests
        assert (
            min(later - earlier for earlier, later in itertools.pairwise(arrivals)) >= 0.1
        )  # as the provider saw them
        assert batch.stats.rate_wait_seconds > 0.5  # most of the 7 gaps of 100 ms were waited for
        # Control: unpaced, the same sandbox does throttle (so the assertion above can fail).
        with nexudus_client(sandbox, static=True) as unpaced, pytest.raises(RateLimitError, match="HTTP 409"):
            list(unpaced.fetch_days(days_between("2024-01-05", "2024-01-05")))
