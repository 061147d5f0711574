"""The sandbox's changes after records were served, over HTTP: corrections at the source (`modify`)
and a connector that serves empty or partial days (`withhold_days`) while the ground truth keeps them."""

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from completions_assets.sandbox import DEFAULT_CREDENTIALS, Sandbox, SandboxConfig, start_sandbox

pytestmark = pytest.mark.integration

DAY = "2024-03-02"
BINDBEE = {
    "Authorization": f"Bearer {DEFAULT_CREDENTIALS['BINDBEE_API_KEY']}",
    "x-connector-token": DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
}
NEXUDUS = {"Authorization": f"Bearer {DEFAULT_CREDENTIALS['NEXUDUS_ACCESS_TOKEN']}"}


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with start_sandbox(SandboxConfig(seed=5, start_date=dt.date(2024, 3, 1), days=3, records_per_day=40)) as running:
        yield running


def _bindbee_day(client: httpx.Client) -> list[dict]:
    params = {"completed_at_from": f"{DAY}T00:00:00Z", "completed_at_to": f"{DAY}T23:59:59.999Z", "page_size": "100"}
    return client.get("/api/lms/v1/completions", params=params, headers=BINDBEE).json()["items"]


def _nexudus_day(client: httpx.Client) -> dict:
    params = {
        "from_CourseCompletedLesson_CreatedOn": f"{DAY}T00:00",
        "to_CourseCompletedLesson_CreatedOn": f"{DAY}T23:59",
        "size": "100",
    }
    return client.get("/api/content/coursecompletedlessons", params=params, headers=NEXUDUS).json()


def _truth(sb: Sandbox, provider: str) -> list[str]:
    start = dt.datetime.fromisoformat(f"{DAY}T00:00:00+00:00")
    return sb.dataset.ground_truth(provider, start, start + dt.timedelta(days=1))


def test_a_correction_is_served_with_a_later_modification_time(sb: Sandbox) -> None:
    with httpx.Client(base_url=sb.base_url, timeout=10) as client:
        before = _bindbee_day(client)[0]
        lesson = _nexudus_day(client)["Records"][0]
        control = {"modify": {"bindbee": [before["id"]], "nexudus": [str(lesson["Id"])]}}
        assert client.post("/_sandbox/control", json=control).json() == {"ok": True}
        after = next(r for r in _bindbee_day(client) if r["id"] == before["id"])
        corrected = next(r for r in _nexudus_day(client)["Records"] if r["Id"] == lesson["Id"])
        newest = client.get(
            "/api/content/coursecompletedlessons",
            params={"orderBy": "UpdatedOn", "dir": "-1", "size": "1"},
            headers=NEXUDUS,
        ).json()["Records"][0]
    assert (after["grade"], after["score"]) != (before["grade"], before["score"])
    assert after["modified_at"] > before["modified_at"]
    assert corrected["UpdatedOn"] > lesson["UpdatedOn"] and corrected["UpdatedBy"] == "corrections@example.com"
    assert newest["Id"] == lesson["Id"]
    assert [r for r in sb.dataset.records("bindbee") if r["id"] == before["id"]][0]["grade"] == after["grade"]


@pytest.mark.parametrize(("share", "served"), [(1.0, 0.0), (0.5, 0.5)])
def test_withheld_days_come_back_empty_or_partial_while_the_truth_keeps_them(
    sb: Sandbox, share: float, served: float
) -> None:
    with httpx.Client(base_url=sb.base_url, timeout=10) as client:
        full = {"bindbee": len(_bindbee_day(client)), "nexudus": _nexudus_day(client)["TotalItems"]}
        knobs = {"withhold_days": [DAY], "withhold_share": share}
        assert client.post("/_sandbox/control", json={"bindbee": knobs, "nexudus": knobs}).json() == {"ok": True}
        bindbee = len(_bindbee_day(client))
        nexudus = _nexudus_day(client)
    assert full["bindbee"] == len(_truth(sb, "bindbee")) > 0
    assert full["nexudus"] == len(_truth(sb, "nexudus")) > 0
    for provider, count in (("bindbee", bindbee), ("nexudus", nexudus["TotalItems"])):
        assert count < full[provider] or share == 0
        assert abs(count - served * full[provider]) <= 0.3 * full[provider]
        assert len(_truth(sb, provider)) == full[provider]
    assert len(nexudus["Records"]) == nexudus["TotalItems"]
