"""Nexudus token endpoint and `GET /api/content/coursecompletedlessons` over real HTTP."""

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from completions_assets.sandbox import Sandbox, SandboxConfig, start_sandbox

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
PATH = "/api/content/coursecompletedlessons"
PREFIX = "CourseCompletedLesson_"
CONFIG = SandboxConfig(
    seed=5, start_date=dt.date(2024, 3, 1), days=12, records_per_day=60, now=dt.datetime(2024, 4, 1, tzinfo=UTC)
)
META_FIELDS = {
    "CurrentPageSize",
    "CurrentPage",
    "CurrentOrderField",
    "CurrentSortDirection",
    "FirstItem",
    "HasNextPage",
    "HasPreviousPage",
    "LastItem",
    "PageNumber",
    "PageSize",
    "TotalItems",
    "TotalPages",
}
RECORD_FIELDS = [
    "CourseLessonId",
    "CourseLessonTitle",
    "CourseMemberId",
    "CourseMemberCoworkerFullName",
    "CourseMemberCoworkerCompanyName",
    "CourseMemberCoworkerTeamNames",
    "Id",
    "UpdatedOn",
    "CreatedOn",
    "UniqueId",
    "UpdatedBy",
    "IsNew",
    "SystemId",
    "ToStringText",
    "LocalizationDetails",
    "CustomFields",
]


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    token = sb.credentials["NEXUDUS_ACCESS_TOKEN"]
    with httpx.Client(base_url=sb.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
        yield c


def password_grant(sb: Sandbox, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": sb.credentials["NEXUDUS_USERNAME"],
        "password": sb.credentials["NEXUDUS_PASSWORD"],
        **overrides,
    }
    return httpx.post(sb.base_url + "/api/token", data=form)


def walk(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, page metadata) of a page walk while HasNextPage."""
    records, metas = [], []
    for page in range(1, 500):
        response = client.get(PATH, params={**params, "page": page})
        assert response.status_code == 200, response.text
        body = response.json()
        records += body.pop("Records")
        metas.append(body)
        if not body["HasNextPage"]:
            return records, metas
    raise AssertionError("HasNextPage never became false")


def _utc_day(day: dt.date, tz: dt.tzinfo = UTC) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return start, start + dt.timedelta(days=1)


def test_password_grant_returns_a_bearer_token(sb: Sandbox) -> None:
    body = password_grant(sb).json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["refresh_token"]
    response = httpx.get(sb.base_url + PATH, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 200


def test_token_endpoint_errors(sb: Sandbox) -> None:
    creds = {
        "grant_type": "password",
        "username": sb.credentials["NEXUDUS_USERNAME"],
        "password": sb.credentials["NEXUDUS_PASSWORD"],
    }
    as_json = httpx.post(sb.base_url + "/api/token", json=creds)
    assert as_json.status_code == 400 and as_json.json() == {"error": "unsupported_grant_type"}
    wrong = password_grant(sb, password="wrong")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert password_grant(sb, grant_type="client_credentials").json()["error"] == "unsupported_grant_type"


def test_refresh_token_grant_is_single_use(sb: Sandbox) -> None:
    refresh = password_grant(sb).json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    renewed = httpx.post(sb.base_url + "/api/token", data=form)
    assert renewed.status_code == 200 and renewed.json()["access_token"]
    again = httpx.post(sb.base_url + "/api/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_data_endpoint_requires_a_valid_bearer_or_basic(sb: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = httpx.get(sb.base_url + PATH, headers=headers)
        assert response.status_code == 401 and "Message" in response.json()
    basic = httpx.get(sb.base_url + PATH, auth=(sb.credentials["NEXUDUS_USERNAME"], sb.credentials["NEXUDUS_PASSWORD"]))
    assert basic.status_code == 200


def test_expired_token_is_401_and_refresh_recovers() -> None:
    with start_sandbox(SandboxConfig(days=2, records_per_day=5, token_lifetime_s=0)) as sandbox:
        token = password_grant(sandbox).json()
        assert token["expires_in"] == 0
        assert (
            httpx.get(sandbox.base_url + PATH, headers={"Authorization": f"Bearer {token['access_token']}"}).status_code
            == 401
        )
    with start_sandbox(SandboxConfig(days=2, records_per_day=5)) as sandbox:
        token = password_grant(sandbox).json()
        sandbox.update(expire_tokens=True)
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        assert httpx.get(sandbox.base_url + PATH, headers=auth).status_code == 401
        form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        fresh = httpx.post(sandbox.base_url + "/api/token", data=form).json()["access_token"]
        assert httpx.get(sandbox.base_url + PATH, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_walk_serves_every_record_once_with_consistent_metadata(client: httpx.Client, sb: Sandbox) -> None:
    records, metas = walk(client, size=40, orderBy="CreatedOn", dir=1)
    ids = [str(r["Id"]) for r in records]
    assert sorted(ids) == sb.dataset.ground_truth("nexudus", dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))
    assert len(set(ids)) == len(ids) == metas[0]["TotalItems"]
    assert [r["CreatedOn"] for r in records] == sorted((r["CreatedOn"] for r in records), key=dt.datetime.fromisoformat)
    for number, meta in enumerate(metas, start=1):
        assert set(meta) == META_FIELDS
        assert (meta["CurrentPage"], meta["PageNumber"], meta["PageSize"], meta["CurrentPageSize"]) == (
            number,
            number,
            40,
            40,
        )
        assert meta["FirstItem"] == (number - 1) * 40 + 1 and meta["HasPreviousPage"] is (number > 1)
        assert meta["TotalPages"] == len(metas) and meta["CurrentOrderField"] == "CreatedOn"
    assert metas[-1]["LastItem"] == len(ids)
    assert list(records[0]) == RECORD_FIELDS


def test_defaults_and_page_past_the_end(client: httpx.Client) -> None:
    body = client.get(PATH).json()
    assert (len(body["Records"]), body["PageSize"], body["CurrentOrderField"], body["CurrentSortDirection"]) == (
        25,
        25,
        "Id",
        1,
    )
    past = client.get(PATH, params={"page": 999}).json()
    assert past["Records"] == [] and past["HasNextPage"] is False and past["HasPreviousPage"] is True


@pytest.mark.parametrize(
    ("value", "direction"), [("1", 1), ("Ascending", 1), ("-1", -1), ("0", -1), ("Descending", -1)]
)
def test_dir_conventions(client: httpx.Client, value: str, direction: int) -> None:
    body = client.get(PATH, params={"orderBy": "Id", "dir": value, "size": 10}).json()
    ids = [r["Id"] for r in body["Records"]]
    assert body["CurrentSortDirection"] == direction
    assert ids == sorted(ids, reverse=direction == -1)


def test_bad_parameters_are_400_unsuccessful(client: httpx.Client) -> None:
    for params in (
        {"page": "x"},
        {"orderBy": "Salary"},
        {"dir": "sideways"},
        {f"from_{PREFIX}CreatedOn": "03/04/2024"},
    ):
        response = client.get(PATH, params=params)
        assert response.status_code == 400 and response.json()["WasSuccessful"] is False, params


def _created_ids(client: httpx.Client, **filters: str) -> list[str]:
    records, _ = walk(client, size=100, orderBy="Id", **filters)
    return [str(r["Id"]) for r in records]


def test_created_on_range_is_inclusive_at_minute_resolution(client: httpx.Client, sb: Sandbox) -> None:
    day = dt.date(2024, 3, 6)
    served = _created_ids(
        client, **{f"from_{PREFIX}CreatedOn": "2024-03-06T00:00", f"to_{PREFIX}CreatedOn": "2024-03-06T23:59"}
    )
    assert served == sb.dataset.ground_truth("nexudus", *_utc_day(day))
    start, end = _utc_day(day)
    last_minute = sb.dataset.ground_truth("nexudus", end - dt.timedelta(minutes=1), end)
    assert len(last_minute) >= 2  # 23:59:59.999 and another record in the last minute
    shorter = _created_ids(
        client, **{f"from_{PREFIX}CreatedOn": "2024-03-06T00:00", f"to_{PREFIX}CreatedOn": "2024-03-06T23:58"}
    )
    assert shorter == [i for i in served if i not in last_minute]


def test_updated_on_range_filters_by_updated_on(client: httpx.Client, sb: Sandbox) -> None:
    served, _ = walk(
        client, size=100, **{f"from_{PREFIX}UpdatedOn": "2024-03-06T12:00", f"to_{PREFIX}UpdatedOn": "2024-03-07T11:59"}
    )
    lo, hi = dt.datetime(2024, 3, 6, 12, tzinfo=UTC), dt.datetime(2024, 3, 7, 12, tzinfo=UTC)
    expected = [r["Id"] for r in sb.dataset.records("nexudus") if lo <= dt.datetime.fromisoformat(r["UpdatedOn"]) < hi]
    assert sorted(r["Id"] for r in served) == expected and expected


def test_field_filters(client: httpx.Client, sb: Sandbox) -> None:
    records = sb.dataset.records("nexudus")
    sample = next(
        r for r in records if r["CourseMemberCoworkerTeamNames"] and "," in r["CourseMemberCoworkerTeamNames"]
    )
    cases = [
        (
            f"{PREFIX}CourseLesson",
            str(sample["CourseLessonId"]),
            lambda r: r["CourseLessonId"] == sample["CourseLessonId"],
        ),
        (
            f"{PREFIX}CourseMember",
            str(sample["CourseMemberId"]),
            lambda r: r["CourseMemberId"] == sample["CourseMemberId"],
        ),
        (f"{PREFIX}CourseLesson_Title", "lesson 1", lambda r: "lesson 1" in r["CourseLessonTitle"]),
        (
            f"{PREFIX}CourseMember_Coworker_FullName",
            "NÚÑEZ",
            lambda r: "núñez" in r["CourseMemberCoworkerFullName"].lower(),
        ),
        (
            f"{PREFIX}CourseMember_Coworker_CompanyName",
            "Büro",
            lambda r: "Büro" in (r["CourseMemberCoworkerCompanyName"] or ""),
        ),
        (
            f"{PREFIX}CourseMember_Coworker_TeamNames",
            "Design",
            lambda r: "Design" in (r["CourseMemberCoworkerTeamNames"] or ""),
        ),
    ]
    for name, value, keep in cases:
        expected = [str(r["Id"]) for r in records if keep(r)]
        assert _created_ids(client, **{name: value}) == expected and expected, name


def test_filter_zone_is_a_knob_and_naive_timestamps_use_it() -> None:
    zone = ZoneInfo("Asia/Kolkata")  # +05:30, so minutes matter
    config = SandboxConfig(
        seed=5,
        start_date=dt.date(2024, 3, 1),
        days=6,
        records_per_day=40,
        nexudus_filter_tz="Asia/Kolkata",
        nexudus_naive_timestamps=True,
        now=dt.datetime(2024, 4, 1, tzinfo=UTC),
    )
    with start_sandbox(config) as sandbox, httpx.Client(base_url=sandbox.base_url) as c:
        c.headers["Authorization"] = f"Bearer {sandbox.credentials['NEXUDUS_ACCESS_TOKEN']}"
        served, _ = walk(
            c, size=100, **{f"from_{PREFIX}CreatedOn": "2024-03-03T00:00", f"to_{PREFIX}CreatedOn": "2024-03-03T23:59"}
        )
        expected = sandbox.dataset.ground_truth("nexudus", *_utc_day(dt.date(2024, 3, 3), zone))
        assert sorted(str(r["Id"]) for r in served) == expected and expected
        local = [dt.datetime.fromisoformat(r["CreatedOn"]) for r in served]
        assert all(t.tzinfo is None and t.date() == dt.date(2024, 3, 3) for t in local)


def test_throttling_is_409_with_retry_after_and_empty_body() -> None:
    with start_sandbox(SandboxConfig(days=2, records_per_day=5, rate_limits=True)) as sandbox:
        auth = {"Authorization": f"Bearer {sandbox.credentials['NEXUDUS_ACCESS_TOKEN']}"}
        with httpx.Client(base_url=sandbox.base_url, headers=auth) as c:
            responses = [c.get(PATH) for _ in range(50)]
    assert responses[0].status_code == 200
    throttled = [r for r in responses if r.status_code == 409]
    assert throttled and all(r.content == b"" and int(r.headers["Retry-After"]) >= 1 for r in throttled)
    assert {r.status_code for r in responses} == {200, 409}
