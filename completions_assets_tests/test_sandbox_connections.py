"""Many connections per provider in the sandbox: own data, credentials, rate budget, revocation."""

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from completions_assets.sandbox import Dataset, Sandbox, SandboxConfig, connection_credentials, start_sandbox

pytestmark = pytest.mark.integration

BINDBEE = "/api/lms/v1/completions"
NEXUDUS = "/api/content/coursecompletedlessons"
EVER = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
CONNECTIONS = {"bindbee": ("acme", "globex"), "nexudus": ("london", "paris")}
CONFIG = SandboxConfig(days=6, records_per_day=30, now=NOW, connections=CONNECTIONS)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.base_url, timeout=10) as c:
        yield c
    # Revocations would outlive the test otherwise.
    sb.update(revoke={"bindbee": [], "nexudus": []}, revoke_after={"bindbee": {}, "nexudus": {}})


def cred(sb: Sandbox, provider: str, connection: str, base: str) -> str:
    return next(v for k, v in sb.connection_credentials(provider, connection).items() if k.startswith(base))


def bindbee_headers(sb: Sandbox, connection: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {cred(sb, 'bindbee', connection, 'BINDBEE_API_KEY')}",
        "x-connector-token": cred(sb, "bindbee", connection, "BINDBEE_CONNECTOR_TOKEN"),
    }


def nexudus_headers(sb: Sandbox, connection: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {cred(sb, 'nexudus', connection, 'NEXUDUS_ACCESS_TOKEN')}"}


def get(client: httpx.Client, sb: Sandbox, provider: str, connection: str, **params: Any) -> httpx.Response:
    if provider == "bindbee":
        return client.get(BINDBEE, params={"page_size": 1, **params}, headers=bindbee_headers(sb, connection))
    return client.get(NEXUDUS, params={"size": 1, **params}, headers=nexudus_headers(sb, connection))


def walk(client: httpx.Client, provider: str, headers: dict[str, str], **params: Any) -> list[dict]:
    """Every record the API serves with these credentials and filters, over every page."""
    bindbee = provider == "bindbee"
    records: list[dict] = []
    params = {**params, **({"page_size": 100} if bindbee else {"size": 100, "page": 1})}
    while True:
        body = client.get(BINDBEE if bindbee else NEXUDUS, params=params, headers=headers).json()
        records += body["items"] if bindbee else body["Records"]
        if (body["cursor"] is None) if bindbee else not body["HasNextPage"]:
            return records
        params.update({"cursor": body["cursor"]} if bindbee else {"page": body["CurrentPage"] + 1})


def day_filter(provider: str, day: dt.date) -> dict[str, str]:
    if provider == "bindbee":
        return {"completed_at_from": f"{day}T00:00:00Z", "completed_at_to": f"{day}T23:59:59.999Z"}
    return {
        "from_CourseCompletedLesson_CreatedOn": f"{day}T00:00",
        "to_CourseCompletedLesson_CreatedOn": f"{day}T23:59",
    }


def grant(client: httpx.Client, sb: Sandbox, connection: str, password: str | None = None) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": cred(sb, "nexudus", connection, "NEXUDUS_USERNAME"),
        "password": password or cred(sb, "nexudus", connection, "NEXUDUS_PASSWORD"),
    }
    return client.post("/api/token", data=form)


def test_credentials_follow_the_naming_convention(sb: Sandbox) -> None:
    assert connection_credentials("bindbee", "acme", {}) == {
        "BINDBEE_API_KEY": "sandbox-bindbee-key",
        "BINDBEE_CONNECTOR_TOKEN_ACME": "sandbox-connector-token-acme",
    }
    assert connection_credentials("nexudus", "paris", {"NEXUDUS_PASSWORD_PARIS": "from-env"}) == {
        "NEXUDUS_USERNAME_PARIS": "sandbox-paris@example.com",
        "NEXUDUS_PASSWORD_PARIS": "from-env",
        "NEXUDUS_ACCESS_TOKEN_PARIS": "sandbox-nexudus-token-paris",
    }
    assert connection_credentials("nexudus", "default") == {k: v for k, v in sb.credentials.items() if "NEXUDUS" in k}
    for provider, name in [(p, n) for p, names in CONNECTIONS.items() for n in names]:
        assert sb.connection_credentials(provider, name) == connection_credentials(provider, name)
    with pytest.raises(ValueError):
        sb.connection_credentials("bindbee", "london")


@pytest.mark.parametrize(("provider", "key"), [("bindbee", "id"), ("nexudus", "Id")])
def test_each_connection_serves_its_own_data_matching_ground_truth(
    client: httpx.Client, sb: Sandbox, provider: str, key: str
) -> None:
    served = {}
    for name in CONNECTIONS[provider]:
        headers = bindbee_headers(sb, name) if provider == "bindbee" else nexudus_headers(sb, name)
        records = walk(client, provider, headers)
        truth = client.get("/_sandbox/ground_truth", params={"provider": provider, "connection": name, **EVER})
        assert sorted(str(r[key]) for r in records) == truth.json()["ids"]
        assert records == sb.dataset.records(provider, name) and len(records) > 50
        for day in (CONFIG.start_date + dt.timedelta(days=i) for i in range(CONFIG.days)):  # filtered walks too
            start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
            expected = sb.dataset.ground_truth(provider, start, start + dt.timedelta(days=1), connection=name)
            assert sorted(str(r[key]) for r in walk(client, provider, headers, **day_filter(provider, day))) == expected
        served[name] = records
    first, second = served.values()
    assert first != second
    if provider == "bindbee":  # UUIDs: one connection's ids (and its users) never appear under another
        assert not {r["id"] for r in first} & {r["id"] for r in second}
        assert not {r["user"] for r in first} & {r["user"] for r in second}
    else:  # Nexudus numbers every account's records from the same base: ids repeat
        assert {r["Id"] for r in first} & {r["Id"] for r in second}


def test_default_connection_keeps_todays_data_and_credentials_beside_others() -> None:
    today = SandboxConfig(days=4, records_per_day=20, now=NOW)
    both = SandboxConfig(days=4, records_per_day=20, now=NOW, connections={"bindbee": ("default", "acme")})
    assert both.connections == {"bindbee": ("default", "acme"), "nexudus": ("default",)}
    alone, beside = Dataset(today), Dataset(both)
    for provider in ("bindbee", "nexudus"):
        assert beside.records(provider) == alone.records(provider)
    assert beside.records("bindbee", "acme") != alone.records("bindbee")
    with start_sandbox(both) as sandbox:
        ok = httpx.get(sandbox.base_url + BINDBEE, headers=bindbee_headers(sandbox, "default"))
        assert ok.status_code == 200 and ok.json()["items"] == alone.records("bindbee")[:50]


def test_credentials_only_read_their_own_connection(client: httpx.Client, sb: Sandbox) -> None:
    acme = bindbee_headers(sb, "acme")
    assert get(client, sb, "bindbee", "acme").json()["items"] == sb.dataset.records("bindbee", "acme")[:1]
    user = sb.dataset.records("bindbee", "acme")[-1]["user"]  # filters read the connection's own people
    by_user = [r for r in sb.dataset.records("bindbee", "acme") if r["user"] == user]
    assert walk(client, "bindbee", acme, user=user) == by_user
    assert walk(client, "bindbee", bindbee_headers(sb, "globex"), user=user) == []
    unknown = client.get(BINDBEE, headers={**acme, "x-connector-token": "sandbox-connector-token"})  # not configured
    bad_key = client.get(BINDBEE, headers={**acme, "Authorization": "Bearer other-organisation"})
    assert (unknown.status_code, bad_key.status_code) == (403, 401)
    # Every Nexudus way in (static token, granted token, refreshed token, Basic) reads the account's data.
    paris = sb.dataset.records("nexudus", "paris")
    token = grant(client, sb, "paris").json()
    refreshed = client.post("/api/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    basic = (cred(sb, "nexudus", "paris", "NEXUDUS_USERNAME"), cred(sb, "nexudus", "paris", "NEXUDUS_PASSWORD"))
    for auth in (
        nexudus_headers(sb, "paris"),
        {"Authorization": f"Bearer {token['access_token']}"},
        {"Authorization": f"Bearer {refreshed.json()['access_token']}"},
    ):
        assert client.get(NEXUDUS, params={"size": 5}, headers=auth).json()["Records"] == paris[:5]
    assert client.get(NEXUDUS, params={"size": 5}, auth=basic).json()["Records"] == paris[:5]
    assert sb.dataset.records("nexudus", "london")[:5] != paris[:5]
    crossed = grant(client, sb, "paris", password=cred(sb, "nexudus", "london", "NEXUDUS_PASSWORD"))
    assert crossed.status_code == 400 and crossed.json()["error"] == "invalid_grant"
    assert client.get(NEXUDUS, headers={"Authorization": "Bearer sandbox-nexudus-token"}).status_code == 401


def test_rate_budgets_are_per_connection() -> None:
    config = SandboxConfig(days=2, records_per_day=5, now=NOW, rate_limits=True, connections=CONNECTIONS)
    with start_sandbox(config) as s, httpx.Client(base_url=s.base_url, timeout=10) as c:
        statuses = [get(c, s, "bindbee", "acme").status_code for _ in range(201)]
        assert statuses == [200] * 200 + [429]  # 200 per minute per connector token
        globex = get(c, s, "bindbee", "globex")
        assert globex.status_code == 200 and globex.headers["X-RateLimit-Remaining"] == "199"
        for _ in range(20):  # 1 request per 100 ms per account: back to back, the second is refused
            if [get(c, s, "nexudus", "london").status_code for _ in range(2)] == [200, 409]:
                break
        else:
            pytest.fail("london was never throttled")
        assert get(c, s, "nexudus", "paris").status_code == 200  # paris has its own budget


def test_revoke_refuses_exactly_that_connection_and_can_be_lifted(client: httpx.Client, sb: Sandbox) -> None:
    token = grant(client, sb, "london").json()
    sb.update(revoke={"bindbee": ["acme"]})
    assert client.post("/_sandbox/control", json={"revoke": {"nexudus": ["london"]}}).json() == {"ok": True}
    refused = get(client, sb, "bindbee", "acme")
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid connector token"}
    assert get(client, sb, "bindbee", "globex").status_code == 200
    assert get(client, sb, "nexudus", "london").status_code == 401
    assert client.get(NEXUDUS, headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 401
    denied = [
        grant(client, sb, "london"),
        client.post("/api/token", data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}),
    ]
    assert [(r.status_code, r.json()["error"]) for r in denied] == [(400, "invalid_grant")] * 2
    assert get(client, sb, "nexudus", "paris").status_code == 200 and grant(client, sb, "paris").status_code == 200
    assert client.post("/_sandbox/control", json={"revoke": {"bindbee": [], "nexudus": []}}).json() == {"ok": True}
    assert [get(client, sb, p, n).status_code for p, n in (("bindbee", "acme"), ("nexudus", "london"))] == [200, 200]
    assert client.post("/_sandbox/control", json={"revoke": {"bindbee": ["london"]}}).status_code == 400


def test_revoke_after_refuses_from_the_next_data_request_on(client: httpx.Client, sb: Sandbox) -> None:
    control = {"revoke_after": {"bindbee": {"acme": 3}, "nexudus": {"paris": 2}}}
    assert client.post("/_sandbox/control", json=control).json() == {"ok": True}
    interleaved = [get(client, sb, "bindbee", name).status_code for _ in range(5) for name in ("acme", "globex")]
    assert interleaved[::2] == [200, 200, 200, 401, 401] and interleaved[1::2] == [200] * 5
    token = grant(client, sb, "paris").json()  # granted before the limit is reached
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert [client.get(NEXUDUS, headers=auth).status_code for _ in range(3)] == [200, 200, 401]
    assert grant(client, sb, "paris").status_code == 400  # revoked now: no new token either
    assert get(client, sb, "nexudus", "london").status_code == 200
    sb.update(revoke_after={"bindbee": {}})
    assert get(client, sb, "bindbee", "acme").status_code == 200


def test_stats_count_each_connection(client: httpx.Client, sb: Sandbox) -> None:
    before = sb.stats()
    sb.update(revoke={"bindbee": ["globex"]})
    get(client, sb, "bindbee", "acme")
    get(client, sb, "bindbee", "globex")
    get(client, sb, "nexudus", "paris")
    client.get(BINDBEE, headers={"Authorization": "Bearer nope"})  # no connection: aggregate only
    after = client.get("/_sandbox/stats").json()
    assert after == sb.stats()
    was, now = before["connections"], after["connections"]
    assert now["bindbee"]["acme"]["requests"] == was["bindbee"]["acme"]["requests"] + 1
    assert now["bindbee"]["globex"]["statuses"]["401"] == was["bindbee"]["globex"]["statuses"].get("401", 0) + 1
    assert now["nexudus"]["paris"]["requests"] == was["nexudus"]["paris"]["requests"] + 1
    assert now["nexudus"]["london"] == was["nexudus"]["london"]
    assert after["bindbee"]["requests"] == before["bindbee"]["requests"] + 3


def test_deletion_and_ground_truth_are_per_connection(client: httpx.Client, sb: Sandbox) -> None:
    victim = sb.dataset.ground_truth("nexudus", NOW - dt.timedelta(days=9999), NOW, "london")[0]
    assert victim in sb.dataset.ground_truth("nexudus", NOW - dt.timedelta(days=9999), NOW, "paris")  # same id, both
    assert client.post("/_sandbox/control", json={"delete": {"nexudus": {"london": [victim]}}}).json() == {"ok": True}
    london, paris, acme = (
        client.get("/_sandbox/ground_truth", params={"provider": "nexudus", "connection": n, **EVER})
        for n in ("london", "paris", "acme")
    )
    assert victim not in london.json()["ids"] and victim in paris.json()["ids"] and acme.status_code == 400
    assert victim not in {str(r["Id"]) for r in walk(client, "nexudus", nexudus_headers(sb, "london"))}


def test_cli_serves_named_connections_and_revokes_one() -> None:
    command = [
        sys.executable,
        "-m",
        "completions_assets.sandbox",
        "--days",
        "2",
        "--records-per-day",
        "5",
        "--bindbee-connections",
        "acme,globex",
        "--nexudus-connections",
        "london",
        "--revoke",
        "bindbee:acme",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINDBEE_", "NEXUDUS_"))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base_url = process.stdout.readline().strip()  # type: ignore[union-attr]
        tokens = [{"x-connector-token": f"sandbox-connector-token-{n}"} for n in ("acme", "globex")]
        statuses = [
            httpx.get(
                base_url + BINDBEE, headers={"Authorization": "Bearer sandbox-bindbee-key", **token}, timeout=10
            ).status_code
            for token in tokens
        ]
        london = {"Authorization": "Bearer sandbox-nexudus-token-london"}
        assert (statuses, httpx.get(base_url + NEXUDUS, headers=london, timeout=10).status_code) == ([401, 200], 200)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
