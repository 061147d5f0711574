"""Every fault knob of the sandbox, per provider, deterministic by request number."""

import datetime as dt
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets_tests.clients_support import update_faults

pytestmark = pytest.mark.integration

BINDBEE = "/api/lms/v1/completions"
NEXUDUS = "/api/content/coursecompletedlessons"
PATHS = {"bindbee": BINDBEE, "nexudus": NEXUDUS}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    config = SandboxConfig(days=6, records_per_day=30, now=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    with start_sandbox(config) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    # Bindbee and Nexudus read different headers, so one client can speak to both.
    headers = {"x-connector-token": sb.credentials["BINDBEE_CONNECTOR_TOKEN"]}
    with httpx.Client(base_url=sb.base_url, headers=headers, timeout=10) as c:
        yield c
    sb.update(bindbee=ProviderFaults(), nexudus=ProviderFaults())


def get(client: httpx.Client, sb: Sandbox, provider: str, **params: str | int) -> httpx.Response:
    token = sb.credentials["BINDBEE_API_KEY" if provider == "bindbee" else "NEXUDUS_ACCESS_TOKEN"]
    return client.get(PATHS[provider], params=params, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_latency_is_added_to_every_data_request(client: httpx.Client, sb: Sandbox, provider: str) -> None:
    update_faults(sb, {provider: ProviderFaults(latency_ms=120)})
    started = time.perf_counter()
    assert get(client, sb, provider).status_code == 200
    assert time.perf_counter() - started >= 0.12


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_fail_on_kth_request_with_retry_after(client: httpx.Client, sb: Sandbox, provider: str) -> None:
    update_faults(sb, {provider: ProviderFaults(fail_status=503, fail_on=2, retry_after="7")})
    first, second, third = (get(client, sb, provider) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, 503, 200)
    assert second.headers["Retry-After"] == "7"


def test_fail_every_kth_request(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(bindbee=ProviderFaults(fail_status=500, fail_every=3))
    statuses = [get(client, sb, "bindbee").status_code for _ in range(6)]
    assert statuses == [200, 200, 500, 200, 200, 500]


def test_status_without_position_fails_every_request(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(nexudus=ProviderFaults(fail_status=502))
    responses = [get(client, sb, "nexudus") for _ in range(3)]
    assert all(r.status_code == 502 and r.text.startswith("<html>") for r in responses)


def test_throttle_statuses_look_like_each_provider(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(bindbee=ProviderFaults(fail_status=429, fail_on=1), nexudus=ProviderFaults(fail_status=409, fail_on=1))
    bindbee, nexudus = get(client, sb, "bindbee"), get(client, sb, "nexudus")
    assert (
        bindbee.status_code == 429
        and isinstance(bindbee.json()["detail"], str)
        and bindbee.headers["Retry-After"] == "1"
    )
    assert nexudus.status_code == 409 and nexudus.content == b"" and nexudus.headers["Retry-After"] == "1"


def test_retry_after_can_be_left_out(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(bindbee=ProviderFaults(fail_status=429, fail_on=1, retry_after=None))
    response = get(client, sb, "bindbee")
    assert response.status_code == 429 and "Retry-After" not in response.headers


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_truncated_body_is_complete_http_but_broken_json(client: httpx.Client, sb: Sandbox, provider: str) -> None:
    update_faults(sb, {provider: ProviderFaults(truncate_on=1)})
    response = get(client, sb, provider)
    assert response.status_code == 200 and len(response.content) == int(response.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert get(client, sb, provider).json()


@pytest.mark.parametrize("status", [200, 502])
def test_html_error_page(client: httpx.Client, sb: Sandbox, status: int) -> None:
    sb.update(
        nexudus=ProviderFaults(html_on=1, html_status=status), bindbee=ProviderFaults(html_on=1, html_status=status)
    )
    for provider in ("bindbee", "nexudus"):
        response = get(client, sb, provider)
        assert response.status_code == status and response.headers["Content-Type"] == "text/html"
        assert response.text.startswith("<html>")


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_connection_closed_mid_body(client: httpx.Client, sb: Sandbox, provider: str) -> None:
    update_faults(sb, {provider: ProviderFaults(disconnect_on=1)})
    with pytest.raises(httpx.RemoteProtocolError):
        get(client, sb, provider)
    assert get(client, sb, provider).status_code == 200


def test_bindbee_repeating_cursor(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(bindbee=ProviderFaults(repeat_cursor=True))
    first = get(client, sb, "bindbee", page_size=5).json()
    second = get(client, sb, "bindbee", page_size=5, cursor=first["cursor"]).json()
    assert first["cursor"] == second["cursor"] and second["items"] == first["items"]
    everything = get(client, sb, "bindbee", page_size=100, completed_at_to="2024-01-01T00:00:00Z").json()
    assert everything["cursor"] is not None  # even a single page never ends


def test_nexudus_repeating_page(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(nexudus=ProviderFaults(repeat_cursor=True))
    first = get(client, sb, "nexudus", page=1, size=1000).json()
    later = get(client, sb, "nexudus", page=7, size=1000).json()
    assert later["Records"] == first["Records"] and later["CurrentPage"] == 1
    assert first["HasNextPage"] is True and first["TotalPages"] == 1


def test_nexudus_unsuccessful_200(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(nexudus=ProviderFaults(unsuccessful_on=2))
    assert "Records" in get(client, sb, "nexudus").json()
    body = get(client, sb, "nexudus").json()
    assert body["WasSuccessful"] is False and body["Message"] and body["Errors"]


def test_only_data_requests_count_and_update_restarts_the_count(client: httpx.Client, sb: Sandbox) -> None:
    sb.update(nexudus=ProviderFaults(fail_status=503, fail_on=1))
    form = {
        "grant_type": "password",
        "username": sb.credentials["NEXUDUS_USERNAME"],
        "password": sb.credentials["NEXUDUS_PASSWORD"],
    }
    assert client.post("/api/token", data=form).status_code == 200
    assert get(client, sb, "bindbee").status_code == 200  # counted for bindbee only
    assert get(client, sb, "nexudus").status_code == 503
    sb.update(nexudus=ProviderFaults(fail_status=503, fail_on=1))
    assert get(client, sb, "nexudus").status_code == 503


def test_control_endpoint_and_stats(client: httpx.Client, sb: Sandbox) -> None:
    before = client.get("/_sandbox/stats").json()
    control = {"bindbee": {"fail_status": 502, "fail_on": 1}, "nexudus": {}}
    assert client.post("/_sandbox/control", json=control).json() == {"ok": True}
    assert get(client, sb, "bindbee").status_code == 502
    after = client.get("/_sandbox/stats").json()
    assert after["bindbee"]["requests"] == before["bindbee"]["requests"] + 1
    assert after["bindbee"]["statuses"]["502"] == before["bindbee"]["statuses"].get("502", 0) + 1
    assert set(after) == {"bindbee", "nexudus", "token"} and sb.stats() == after
    assert client.post("/_sandbox/control", json={"bindbee": {"no_such_knob": 1}}).status_code == 400


@pytest.mark.parametrize(("provider", "key"), [("bindbee", "items"), ("nexudus", "Records")])
def test_duplicate_on_kth_request_repeats_the_first_record(
    client: httpx.Client, sb: Sandbox, provider: str, key: str
) -> None:
    update_faults(sb, {provider: ProviderFaults(duplicate_on=2)})
    clean, doubled = (get(client, sb, provider).json()[key] for _ in range(2))
    assert doubled == [*clean, clean[0]]


@pytest.mark.parametrize(("provider", "key"), [("bindbee", "items"), ("nexudus", "Records")])
def test_drift_changes_every_record_but_not_the_page(
    client: httpx.Client, sb: Sandbox, provider: str, key: str
) -> None:
    clean = get(client, sb, provider).json()
    served = {}
    for mode in ("unknown_fields", "omit_optional", "number_as_string", "bad_type"):
        update_faults(sb, {provider: ProviderFaults(drift=mode)})
        served[mode] = get(client, sb, provider).json()
        assert {k: v for k, v in served[mode].items() if k != key} == {k: v for k, v in clean.items() if k != key}
    records, first = clean[key], clean[key][0]
    extra = {
        "bindbee": {"completion_source", "attempt_count"},
        "nexudus": {"CourseLessonDurationMinutes", "CertificateUrl"},
    }
    assert all(set(r) == set(first) | extra[provider] for r in served["unknown_fields"][key])
    kept = {
        "bindbee": {"id", "user", "course", "content", "completed_at"},
        "nexudus": {"Id", "CourseLessonId", "CourseMemberId", "CreatedOn"},
    }
    assert all(set(r) == kept[provider] for r in served["omit_optional"][key])
    numbers = {"bindbee": ["score"], "nexudus": ["Id", "CourseLessonId", "CourseMemberId"]}
    as_text = [{name: r[name] for name in numbers[provider]} for r in served["number_as_string"][key]]
    assert as_text == [{n: None if r[n] is None else str(r[n]) for n in numbers[provider]} for r in records]
    event = "completed_at" if provider == "bindbee" else "CreatedOn"
    drifted = served["bad_type"][key]
    assert isinstance(drifted[0][event], int) and drifted[1:] == records[1:]
    moment = dt.datetime.fromisoformat(first[event].replace("Z", "+00:00"))
    assert drifted[0][event] == int(moment.timestamp() * 1000)


def test_drift_mode_is_validated(client: httpx.Client) -> None:
    with pytest.raises(ValueError, match="drift must be one of"):
        ProviderFaults(drift="renamed_fields")
    assert client.post("/_sandbox/control", json={"nexudus": {"drift": "nope"}}).status_code == 400
