"""Bindbee `GET /api/lms/v1/completions` as served by the sandbox, over real HTTP."""

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from completions_assets.sandbox import Sandbox, SandboxConfig, start_sandbox

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
PATH = "/api/lms/v1/completions"
DAY = dt.date(2024, 3, 4)
CONFIG = SandboxConfig(
    seed=11, start_date=dt.date(2024, 3, 1), days=12, records_per_day=60, now=dt.datetime(2024, 4, 1, tzinfo=UTC)
)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as sandbox:
        yield sandbox


def _headers(sb: Sandbox) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {sb.credentials['BINDBEE_API_KEY']}",
        "x-connector-token": sb.credentials["BINDBEE_CONNECTOR_TOKEN"],
    }


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url, headers=_headers(sb), timeout=10) as c:
        yield c


def walk(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor walk; checks the per-page invariants on the way."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        response = client.get(PATH, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["page_size"] == len(body["items"])
        items += body["items"]
        cursor = body["cursor"]
        if cursor is None:
            return items
    raise AssertionError("cursor never reached null")


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


def test_missing_or_wrong_api_key_is_401_with_www_authenticate(sb: Sandbox) -> None:
    for auth in ({}, {"Authorization": "Bearer nope"}, {"Authorization": sb.credentials["BINDBEE_API_KEY"]}):
        response = httpx.get(sb.base_url + PATH, headers={**auth, "x-connector-token": "sandbox-connector-token"})
        assert response.status_code == 401
        assert isinstance(response.json()["detail"], str)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_connector_token_wrong_is_403_missing_is_422(sb: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {sb.credentials['BINDBEE_API_KEY']}"}
    wrong = httpx.get(sb.base_url + PATH, headers={**auth, "x-connector-token": "other"})
    assert wrong.status_code == 403 and isinstance(wrong.json()["detail"], str)
    missing = httpx.get(sb.base_url + PATH, headers=auth)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "x-connector-token"]


@pytest.mark.parametrize(
    ("value", "kind"), [("0", "greater_than_equal"), ("101", "less_than_equal"), ("ten", "int_parsing")]
)
def test_page_size_out_of_range_is_422_fastapi_style(client: httpx.Client, value: str, kind: str) -> None:
    response = client.get(PATH, params={"page_size": value})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "page_size"] and error["type"] == kind and error["msg"]


def test_page_size_defaults_to_50_and_100_is_allowed(client: httpx.Client) -> None:
    assert client.get(PATH).json()["page_size"] == 50
    assert client.get(PATH, params={"page_size": 100}).json()["page_size"] == 100


def test_walk_serves_every_record_once_in_id_order(client: httpx.Client, sb: Sandbox) -> None:
    items = walk(client, page_size=37)
    ids = [item["id"] for item in items]
    everything = sb.dataset.ground_truth("bindbee", dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    assert ids == everything == sorted(set(ids))
    assert len(ids) > 400


def test_cursor_is_base64_of_the_next_pages_first_id(client: httpx.Client) -> None:
    first = client.get(PATH, params={"page_size": 5}).json()
    second = client.get(PATH, params={"page_size": 5, "cursor": first["cursor"]}).json()
    assert base64.b64decode(first["cursor"]).decode() == second["items"][0]["id"]
    assert client.get(PATH, params={"cursor": "not-a-cursor!"}).status_code == 400


def test_completed_at_range_of_a_day_equals_ground_truth(client: httpx.Client, sb: Sandbox) -> None:
    start, end = _day(DAY)
    items = walk(
        client, page_size=100, completed_at_from="2024-03-04T00:00:00Z", completed_at_to="2024-03-04T23:59:59.999999Z"
    )
    assert [i["id"] for i in items] == sb.dataset.ground_truth("bindbee", start, end)
    stamps = {i["completed_at"] for i in items}
    assert {"2024-03-04T00:00:00Z", "2024-03-04T23:59:59.999Z"} <= stamps


@pytest.mark.parametrize(
    ("bounds", "included"),
    [
        ({"completed_at_from": "2024-03-04T23:59:59.999Z"}, True),
        ({"completed_at_from": "2024-03-04T23:59:59.999001Z"}, False),
        ({"completed_at_to": "2024-03-04T23:59:59.999Z"}, True),
        ({"completed_at_to": "2024-03-04T23:59:59.998999Z"}, False),
        ({"completed_at_to": "2024-03-04T23:59:59.999"}, True),  # no offset: read as UTC
        ({"completed_at_to": "2024-03-05T00:59:59.999+01:00"}, True),
        ({"completed_at_to": "2024-03-05T00:59:59.998+01:00"}, False),
    ],
)
def test_completed_at_bounds_are_inclusive_to_the_microsecond(
    client: httpx.Client, bounds: dict[str, str], included: bool
) -> None:
    window = {"completed_at_from": "2024-03-04T23:59:59Z", "completed_at_to": "2024-03-05T00:00:00.5Z", **bounds}
    stamps = [i["completed_at"] for i in walk(client, page_size=100, **window)]
    assert ("2024-03-04T23:59:59.999Z" in stamps) is included


def test_bad_datetime_is_422(client: httpx.Client) -> None:
    for value in ("yesterday", "2024-03-04T00:00:00.1234567Z"):
        response = client.get(PATH, params={"completed_at_from": value})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "completed_at_from"]


def test_started_at_range_is_inclusive(client: httpx.Client, sb: Sandbox) -> None:
    records = sb.dataset.records("bindbee")
    pivot = next(r["started_at"] for r in records if r["started_at"])
    served = walk(client, page_size=100, started_at_from=pivot, started_at_to=pivot)
    expected = [r["id"] for r in records if r["started_at"] and _ts(r["started_at"]) == _ts(pivot)]
    assert [i["id"] for i in served] == expected and expected


def test_field_filters_match_the_data_set(client: httpx.Client, sb: Sandbox) -> None:
    records = sb.dataset.records("bindbee")
    sample = records[7]
    no_course = next(r for r in records if r["course"] is None)
    cases: list[tuple[dict[str, str], Any]] = [
        ({"ids": f"{sample['id']},{no_course['id']}"}, lambda r: r["id"] in (sample["id"], no_course["id"])),
        ({"user": sample["user"]}, lambda r: r["user"] == sample["user"]),
        ({"course": sample["course"]}, lambda r: r["course"] == sample["course"]),
        ({"content": no_course["content"]}, lambda r: r["content"] == no_course["content"]),
        ({"grade": "-"}, lambda r: r["grade"] == "-"),
        ({"remote_id": sample["remote_id"]}, lambda r: r["remote_id"] == sample["remote_id"]),
    ]
    for params, keep in cases:
        expected = [r["id"] for r in records if keep(r)]
        assert [i["id"] for i in walk(client, page_size=100, **params)] == expected and expected, params
    assert client.get(PATH, params={"grade": "E"}).status_code == 422


def test_raw_data_and_custom_fields_only_when_asked(client: httpx.Client) -> None:
    plain = client.get(PATH, params={"page_size": 20}).json()["items"]
    assert all(i["raw_data"] is None and i["custom_fields"] is None for i in plain)
    rich = client.get(
        PATH, params={"page_size": 20, "include_raw_data": "true", "include_custom_fields": "true"}
    ).json()["items"]
    assert all(isinstance(i["raw_data"], dict) and isinstance(i["custom_fields"], dict) for i in rich)
    assert [i["id"] for i in rich] == [i["id"] for i in plain]
    assert client.get(PATH, params={"include_raw_data": "maybe"}).status_code == 422


def test_expand_inlines_objects_with_optional_field_lists(client: httpx.Client, sb: Sandbox) -> None:
    no_course = next(r for r in sb.dataset.records("bindbee") if r["course"] is None)
    params = {"ids": no_course["id"], "expand": "user[first_name,email_address],course,content"}
    (item,) = client.get(PATH, params=params).json()["items"]
    assert set(item["user"]) == {"id", "first_name", "email_address"} and item["user"]["id"] == no_course["user"]
    assert item["course"] is None  # a null relation stays null
    assert item["content"]["id"] == no_course["content"] and {"title", "type"} <= set(item["content"])
    assert client.get(PATH, params={"expand": "manager"}).status_code == 422
    assert client.get(PATH, params={"expand": "user[salary]"}).status_code == 422


def test_rate_limit_headers_on_every_2xx(client: httpx.Client) -> None:
    first, second = client.get(PATH), client.get(PATH)
    for response in (first, second):
        assert response.headers["X-RateLimit-Limit"] == "200"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(dt.datetime.now(UTC).timestamp())
    assert int(second.headers["X-RateLimit-Remaining"]) < int(first.headers["X-RateLimit-Remaining"])


def test_over_200_requests_a_minute_is_429_with_retry_after() -> None:
    with start_sandbox(SandboxConfig(days=2, records_per_day=5, rate_limits=True)) as sandbox:
        with httpx.Client(base_url=sandbox.base_url, headers=_headers(sandbox)) as c:
            statuses = []
            for _ in range(201):
                response = c.get(PATH, params={"page_size": 1})
                statuses.append(response.status_code)
            assert statuses == [200] * 200 + [429]
            assert int(response.headers["Retry-After"]) >= 1
            assert isinstance(response.json()["detail"], str)
            assert "X-RateLimit-Remaining" not in response.headers
