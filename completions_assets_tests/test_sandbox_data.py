"""The sandbox data set: determinism, shape, visibility over time and ground truth."""

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from completions_assets.sandbox import Dataset, Sandbox, SandboxConfig, start_sandbox

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
CONFIG = SandboxConfig(
    seed=3, start_date=dt.date(2024, 5, 1), days=20, records_per_day=50, now=dt.datetime(2024, 6, 1, tzinfo=UTC)
)
DURATION = re.compile(r"^P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$")


@pytest.fixture(scope="module")
def data() -> Dataset:
    return Dataset(CONFIG)


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_same_seed_same_data_other_seed_other_data(data: Dataset) -> None:
    again = Dataset(CONFIG)
    other = Dataset(dataclasses.replace(CONFIG, seed=4))
    for provider in ("bindbee", "nexudus"):
        assert again.records(provider) == data.records(provider)
        assert other.records(provider) != data.records(provider)


def test_every_non_empty_day_has_boundary_stamps_and_some_days_are_empty(data: Dataset) -> None:
    for provider, field in (("bindbee", "completed_at"), ("nexudus", "CreatedOn")):
        stamps: dict[dt.date, list[dt.datetime]] = {}
        for record in data.records(provider):
            stamp = _at(record[field])
            stamps.setdefault(stamp.date(), []).append(stamp)
        empty = data.empty_days(provider)
        assert empty and not set(empty) & set(stamps)
        for day, values in stamps.items():
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
            last = midnight + dt.timedelta(days=1, milliseconds=-1)
            assert midnight in values and last in values, (provider, day)
            assert sum(last - dt.timedelta(minutes=1) < v < last for v in values) >= 1


def test_bindbee_values_are_realistic(data: Dataset) -> None:
    records = data.records("bindbee")
    assert {r["grade"] for r in records} >= {None, "-", "PASS", "FAIL", "A", "F"}
    assert None in {r["score"] for r in records} and all(
        0 <= r["score"] <= 100 for r in records if r["score"] is not None
    )
    durations = {r["time_duration"] for r in records} - {None}
    assert durations >= {"PT1H15M", "PT45M", "PT30S"} and all(DURATION.match(d) for d in durations)
    assert all(r["course"] or r["content"] for r in records)
    assert any(r["course"] is None for r in records) and any(r["content"] is None for r in records)
    assert all(_at(r["started_at"]) <= _at(r["completed_at"]) for r in records if r["started_at"])


def test_nexudus_values_are_realistic(data: Dataset) -> None:
    records = data.records("nexudus")
    names = {r["CourseMemberCoworkerFullName"] for r in records}
    assert {"Zoë Ångström", "José Núñez", "李雷"} <= {p.full_name for p in data.catalog.people}
    assert any(not n.isascii() for n in names)
    assert any(r["CourseMemberCoworkerTeamNames"] and "," in r["CourseMemberCoworkerTeamNames"] for r in records)
    assert any(r["CustomFields"] for r in records) and any(r["CustomFields"] is None for r in records)
    assert all(_at(r["UpdatedOn"]) >= _at(r["CreatedOn"]) for r in records)


def test_bindbee_ids_are_uuid7_of_the_visibility_time(data: Dataset) -> None:
    for record in data.records("bindbee")[:200]:
        hex_id = record["id"].replace("-", "")
        assert hex_id[12] == "7"
        millis = int(hex_id[:12], 16)
        assert dt.datetime.fromtimestamp(millis / 1000, UTC) == _at(record["modified_at"])


def test_generates_30_days_of_2000_records_per_provider_quickly() -> None:
    started = time.perf_counter()
    big = Dataset(SandboxConfig(days=30, records_per_day=2000))
    assert time.perf_counter() - started < 5
    assert len(big.tables["bindbee"].ids) >= 25 * 2000


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as sandbox:
        yield sandbox


def _late(sb: Sandbox, provider: str, day: dt.date) -> list[str]:
    table = sb.dataset.tables[provider]
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    lo, hi = int(start.timestamp() * 1000), int(start.timestamp() * 1000) + 86_400_000
    return [table.ids[p] for p in table.event_positions(lo, hi) if table.visible[p] > hi + 3_600_000]


def _served_bindbee(client: httpx.Client, sb: Sandbox, day: dt.date) -> list[str]:
    ids, cursor = [], None
    while True:
        params: dict[str, str | int] = {
            "page_size": 100,
            "completed_at_from": f"{day}T00:00:00Z",
            "completed_at_to": f"{day}T23:59:59.999Z",
            **({"cursor": cursor} if cursor else {}),
        }
        body = client.get(
            "/api/lms/v1/completions",
            params=params,
            headers={
                "Authorization": f"Bearer {sb.credentials['BINDBEE_API_KEY']}",
                "x-connector-token": sb.credentials["BINDBEE_CONNECTOR_TOKEN"],
            },
        ).json()
        ids += [item["id"] for item in body["items"]]
        cursor = body["cursor"]
        if cursor is None:
            return ids


def test_late_records_appear_only_once_now_passes_their_time(sb: Sandbox) -> None:
    day = next(d for d in (dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(20)) if _late(sb, "bindbee", d))
    late = _late(sb, "bindbee", day)
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    bounds = (start, start + dt.timedelta(days=1))
    with httpx.Client(base_url=sb.base_url) as client:
        sb.update(now=start + dt.timedelta(days=1, hours=1))
        early = sb.dataset.ground_truth("bindbee", *bounds)
        assert not set(late) & set(early) and _served_bindbee(client, sb, day) == early
        sb.update(now=start + dt.timedelta(days=4))
        final = sb.dataset.ground_truth("bindbee", *bounds)
        assert set(late) <= set(final) and _served_bindbee(client, sb, day) == final


def test_ground_truth_endpoint_and_deletions(sb: Sandbox) -> None:
    start, end = "2024-05-03T00:00:00Z", "2024-05-05T00:00:00Z"
    with httpx.Client(base_url=sb.base_url) as client:
        served = client.get(
            "/_sandbox/ground_truth", params={"provider": "nexudus", "start": start, "end": end}
        ).json()["ids"]
        assert served == sb.dataset.ground_truth("nexudus", _at(start), _at(end)) and served
        sb.update(delete={"nexudus": served[:2]})
        after = client.get("/_sandbox/ground_truth", params={"provider": "nexudus", "start": start, "end": end}).json()[
            "ids"
        ]
        assert after == served[2:]
        auth = {"Authorization": f"Bearer {sb.credentials['NEXUDUS_ACCESS_TOKEN']}"}
        body = client.get("/api/content/coursecompletedlessons", headers=auth, params={"size": 1000}).json()
        assert not {str(r["Id"]) for r in body["Records"]} & set(served[:2])
        assert (
            client.get("/_sandbox/ground_truth", params={"provider": "x", "start": start, "end": end}).status_code
            == 400
        )
    with pytest.raises(ValueError):
        sb.update(delete={"bindbee": ["not-an-id"]})
