"""Bindbee client: filter bounds, parsing, cursor paging, and every record over real HTTP."""

import datetime as dt
import math
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from completions_assets.http.errors import PaginationLoopError, PayloadError
from completions_assets.http.pacing import ManualClock
from completions_assets.providers.bindbee import (
    BINDBEE,
    BINDBEE_SCHEMA,
    BindbeeSettings,
    parse_completions,
)
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.records import RecordLocator
from completions_assets.providers.relations import expand_value
from completions_assets.providers.resource import BindbeeResource
from completions_assets.sandbox import Sandbox
from completions_assets_tests.clients_support import (
    Oracle,
    Script,
    bindbee_client,
    days_between,
    fast_settings,
    json_reply,
    running_sandbox,
)

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox() as running:
        yield running


def test_filter_bounds_are_inclusive_to_the_microsecond() -> None:
    start = dt.datetime(2024, 1, 1, 5, tzinfo=UTC)
    settings = BindbeeSettings(page_size=100, include_custom_fields=True, expand_relations=False)
    params = BINDBEE.window_query(settings, start, start + dt.timedelta(days=2))
    assert params == {
        "page_size": "100",
        "completed_at_from": "2024-01-01T05:00:00.000000Z",
        "completed_at_to": "2024-01-03T04:59:59.999999Z",
        "include_custom_fields": "true",
    }


def test_expand_asks_for_the_name_fields_only_and_email_only_on_request() -> None:
    assert expand_value(include_email=False) == "user[first_name,last_name],course[name],content[title]"
    assert expand_value(include_email=True) == ("user[first_name,last_name,email_address],course[name],content[title]")
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    params = BINDBEE.window_query(BindbeeSettings(include_email=True), start, start + dt.timedelta(days=1))
    assert params["expand"] == expand_value(include_email=True)
    assert "expand" not in BINDBEE.window_query(BindbeeSettings(expand_relations=False), start, start)


def test_relations_parse_as_ids_or_objects_and_keep_the_id_either_way() -> None:
    expanded = {
        **RECORD,
        "user": {"id": "u-2", "first_name": "Zoë", "last_name": "Ångström", "email_address": "z@example.com"},
        "course": {"id": "k-1", "name": "Fire Safety"},
        "content": {"id": "c-2", "title": "Part 1"},
    }
    plain = {**RECORD, "user": "u-3", "course": "k-2", "content": None}
    columns = ["user", "course", "content", "user_name", "user_email", "course_name", "content_title"]
    for include_email, email in ((False, None), (True, "z@example.com")):
        table = parse_completions([expanded, plain], RecordLocator("bindbee"), include_email=include_email)
        assert table.select(columns).to_pylist() == [
            {
                "user": "u-2",
                "course": "k-1",
                "content": "c-2",
                "user_name": "Zoë Ångström",
                "user_email": email,
                "course_name": "Fire Safety",
                "content_title": "Part 1",
            },
            dict.fromkeys(columns) | {"user": "u-3", "course": "k-2"},
        ]


RECORD = {
    "id": "018b18ef-c487-703c-afd9-0ca478ccd9d6",
    "remote_id": "123321",
    "modified_at": "2021-10-16T00:00:00Z",
    "raw_data": {"b": "Ünïcode", "a": [1, 2]},
    "custom_fields": {"hire_source": "REFER"},
    "user": {"id": "u-1", "first_name": "Ada"},
    "course": None,
    "content": "c-1",
    "score": 95,
    "grade": "PASS",
    "started_at": "2025-08-01T12:00:00+02:00",
    "completed_at": "2025-08-01T11:15:00.123456Z",
    "time_duration": "PT1H15M",
    "some_future_field": {"nested": True},
}


@pytest.mark.parametrize("include", [False, True])
def test_parse_maps_every_field(include: bool) -> None:
    table = parse_completions([RECORD], RecordLocator("bindbee"), raw_data=include, custom_fields=include)
    assert table.to_pylist() == [
        {
            "id": RECORD["id"],
            "remote_id": "123321",
            "modified_at": dt.datetime(2021, 10, 16, tzinfo=UTC),
            "user": "u-1",  # expanded relation -> its id
            "course": None,
            "content": "c-1",
            "score": 95.0,
            "grade": "PASS",
            "started_at": dt.datetime(2025, 8, 1, 10, tzinfo=UTC),
            "completed_at": dt.datetime(2025, 8, 1, 11, 15, 0, 123456, tzinfo=UTC),
            "time_duration": "PT1H15M",
            "raw_data": '{"a": [1, 2], "b": "Ünïcode"}' if include else None,
            "custom_fields": '{"hire_source": "REFER"}' if include else None,
            "user_name": "Ada",  # a last name not sent is not invented
            "user_email": None,
            "course_name": None,
            "content_title": None,  # served as an id
        }
    ]


def test_parse_reads_naive_timestamps_as_utc() -> None:
    record = {
        **RECORD,
        "completed_at": "2025-08-01T11:15:00.5",
        "started_at": None,
        "modified_at": "2025-08-01T11:15:00.1234567Z",
    }
    row = parse_completions([record], RecordLocator("bindbee")).to_pylist()[0]
    assert row["completed_at"] == dt.datetime(2025, 8, 1, 11, 15, 0, 500000, tzinfo=UTC)
    assert row["modified_at"] == dt.datetime(2025, 8, 1, 11, 15, 0, 123456, tzinfo=UTC)
    assert row["started_at"] is None


def _page(items: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    return {"cursor": cursor, "page_size": len(items), "items": items}


def _mock_client(script: Script, **options: Any) -> ProviderClient:
    resource = BindbeeResource(api_key="k" * 8, connector_token="t" * 8, **fast_settings("bindbee", **options))
    return resource.create_client(clock=ManualClock(), transport=script.transport())


def _fetch(client: ProviderClient) -> list[Any]:
    return list(client.fetch_days(days_between("2025-08-01", "2025-08-01")))


def test_a_short_page_does_not_end_the_walk_and_params_stay_identical() -> None:
    first = [RECORD | {"id": "a"}]
    second = [RECORD | {"id": "b"}, RECORD | {"id": "c"}]
    script = Script([json_reply(200, _page(first, "Y3Vyc29yLTE=")), json_reply(200, _page(second, None))])
    batches = _fetch(_mock_client(script))
    assert batches[0].table["id"].to_pylist() == ["a", "b", "c"]
    params = [dict(r.url.params) for r in script.requests]
    assert params[1].pop("cursor") == "Y3Vyc29yLTE=" and "cursor" not in params[0]
    assert params[0] == params[1]
    assert batches[0].stats.requests == 2 and batches[0].stats.pages == 2


def test_a_repeated_cursor_is_an_error_not_a_loop() -> None:
    page = json_reply(200, _page([RECORD], "c2FtZQ=="))
    script = Script([page, json_reply(200, _page([RECORD | {"id": "x"}], "c2FtZQ=="))])
    with pytest.raises(PaginationLoopError, match="bindbee: page 2 .*already followed"):
        _fetch(_mock_client(script))


def _without(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: {k: v for k, v in record.items() if k != key}


@pytest.mark.parametrize(
    ("bad_page", "message"),
    [
        (lambda r: _page([_without("id")(r)], None), r"page 2 .*record 0: field 'id' is missing"),
        (lambda r: _page([r | {"id": None}], None), r"page 2 .*record 0: field 'id' is missing"),
        (lambda r: _page([_without("completed_at")(r)], None), r"page 2 .*field 'completed_at' is missing"),
        (
            lambda r: _page([r, r | {"completed_at": "yesterday"}], None),
            r"page 2 .*record 1: field 'completed_at' is not an ISO 8601 timestamp: 'yesterday'",
        ),
        (
            lambda r: _page([r | {"started_at": "2024-13-01T00:00:00Z"}], None),
            r"page 2 .*field 'started_at' is not an ISO 8601 timestamp",
        ),
        (
            lambda r: _page([r | {"time_duration": "75 minutes"}], None),
            r"page 2 .*field 'time_duration' is not an ISO 8601 duration",
        ),
        (lambda r: _page([r | {"score": "high"}], None), r"page 2 .*field 'score' is not double"),
        (lambda r: _page(["not-a-record"], None), r"page 2 .*record 0: expected an object"),  # type: ignore[list-item]
        (lambda r: {"cursor": None, "page_size": 0}, r"page 2 .*field 'items' is missing"),
        (lambda r: {"cursor": None, "items": {"id": 1}}, r"page 2 .*field 'items' is a dict"),
        (lambda r: {"page_size": 1, "items": [r]}, r"page 2 .*field 'cursor' is missing"),
        (lambda r: [r], r"page 2 .*expected a JSON object"),
    ],
)
def test_a_bad_payload_names_provider_page_and_field(bad_page: Callable[[dict[str, Any]], Any], message: str) -> None:
    script = Script([json_reply(200, _page([RECORD], "bmV4dA==")), json_reply(200, bad_page(RECORD))])
    with pytest.raises(PayloadError, match=r"^bindbee: " + message):
        _fetch(_mock_client(script))


def test_a_non_json_page_is_a_payload_error_naming_the_page() -> None:
    html = httpx.Response(200, text="<html>Service Unavailable</html>", headers={"Content-Type": "text/html"})
    script = Script([json_reply(200, _page([RECORD], "bmV4dA==")), html])
    with pytest.raises(
        PayloadError,
        match=r"^bindbee: page 2 \(GET https://api.bindbee.dev/.*cursor=bmV4dA.*not JSON.*text/html.*Service Unavailable",
    ):
        _fetch(_mock_client(script))


def test_rate_limit_headers_pause_the_client_until_reset() -> None:
    clock = ManualClock()
    reset = str(int(clock.time()) + 30)
    exhausted = json_reply(200, _page([RECORD], "bmV4dA=="), {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    script = Script([exhausted, json_reply(200, _page([RECORD | {"id": "b"}], None))])
    resource = BindbeeResource(
        api_key="k" * 8, connector_token="t" * 8, **fast_settings("bindbee", requests_per_minute=200)
    )
    client = resource.create_client(clock=clock, transport=script.transport())
    batch = _fetch(client)[0]
    assert clock.sleeps == [pytest.approx(30.0, abs=1.0)]
    assert batch.stats.rate_wait_seconds == pytest.approx(30.0, abs=1.0)


def test_page_size_above_the_maximum_is_refused() -> None:
    with pytest.raises(Exception, match="less than or equal to 100"):
        BindbeeResource(api_key="k", connector_token="t", page_size=101)


# --- over real HTTP against the sandbox ---


@pytest.mark.parametrize(
    ("first", "last", "zone"),
    [
        ("2024-01-10", "2024-01-10", "UTC"),
        ("2024-01-01", "2024-01-31", "UTC"),
        ("2024-01-10", "2024-01-10", "America/New_York"),
        ("2024-01-01", "2024-01-31", "America/New_York"),
    ],
)
def test_every_record_of_the_range_and_nothing_else(sandbox: Sandbox, first: str, last: str, zone: str) -> None:
    with bindbee_client(sandbox) as client:
        batches = list(client.fetch_days(days_between(first, last, zone)))
    assert [b.day for b in batches] == days_between(first, last, zone)
    oracle = Oracle(sandbox, "bindbee")
    for batch in batches:
        assert batch.table.schema == BINDBEE_SCHEMA
        assert batch.table.to_pylist() == oracle.rows_in(batch.day.start, batch.day.end)
    if zone == "UTC":  # the day edges really are exercised
        seconds = {seconds_into_day(t) for b in batches for t in b.table["completed_at"].to_pylist()}
        assert 0.0 in seconds and 86399.999 in seconds
        assert any(86340 <= s < 86399.999 for s in seconds)  # last minute


def seconds_into_day(moment: dt.datetime) -> float:
    return (moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()


def test_a_record_exactly_at_midnight_belongs_to_the_next_day_only(sandbox: Sandbox) -> None:
    with bindbee_client(sandbox) as client:
        first, second = client.fetch_days(days_between("2024-01-04", "2024-01-05"))
    midnight = second.day.start
    assert midnight not in first.table["completed_at"].to_pylist()
    assert midnight in second.table["completed_at"].to_pylist()


def test_a_range_costs_one_request_per_page_of_each_window(sandbox: Sandbox) -> None:
    days = days_between("2024-01-01", "2024-01-31")
    before = sandbox.stats()["bindbee"]["requests"]
    with bindbee_client(sandbox, max_window_days=8, max_concurrent_requests=4) as client:
        batches = list(client.fetch_days(days))
    reports = list({(w.request_from, w.request_to): w for b in batches for w in b.stats.windows}.values())
    spans = [(dt.datetime.fromisoformat(w.request_from), dt.datetime.fromisoformat(w.request_to)) for w in reports]
    expected = sum(max(1, math.ceil(len(sandbox.dataset.ground_truth("bindbee", *span)) / 100)) for span in spans)
    assert sum(w.requests for w in reports) == expected == sandbox.stats()["bindbee"]["requests"] - before


def test_include_flags_request_raw_data_and_custom_fields(sandbox: Sandbox) -> None:
    with bindbee_client(sandbox, include_raw_data=True, include_custom_fields=True) as client:
        table = next(client.fetch_days(days_between("2024-01-10", "2024-01-10"))).table
    assert table["raw_data"].null_count == 0
    assert table["custom_fields"].null_count < table.num_rows
