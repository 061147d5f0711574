"""Recognisable fake credentials never reach a log record, an exception or the output."""

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from completions_assets.http.errors import ProviderError
from completions_assets.http.pacing import ManualClock
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.resource import BindbeeResource, NexudusResource
from completions_assets.sandbox import Sandbox
from completions_assets.sandbox.config import ProviderFaults
from completions_assets_tests.clients_support import days_between, fast_settings, running_sandbox

pytestmark = pytest.mark.integration

SECRETS = {
    "BINDBEE_API_KEY": "SECRET-bindbee-key-1234",
    "BINDBEE_CONNECTOR_TOKEN": "SECRET-connector-token-5678",
    "NEXUDUS_USERNAME": "secret-user@example.com",
    "NEXUDUS_PASSWORD": "SECRET-nexudus-password-9012",
    "NEXUDUS_ACCESS_TOKEN": "SECRET-nexudus-token-3456",
}
WRONG = {
    "api_key": "SECRET-wrong-key-0000",
    "connector_token": "SECRET-wrong-connector-0000",
    "password": "SECRET-wrong-password-0000",
}
DAY = days_between("2024-01-05", "2024-01-05")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)  # the sandbox accepts these instead of its defaults
        with running_sandbox(days=10, token_lifetime_s=0.2) as running:
            yield running


def _bindbee(
    sandbox: Sandbox,
    api_key: str = SECRETS["BINDBEE_API_KEY"],
    connector_token: str = SECRETS["BINDBEE_CONNECTOR_TOKEN"],
) -> ProviderClient:
    resource = BindbeeResource(
        base_url=sandbox.base_url, api_key=api_key, connector_token=connector_token, **fast_settings("bindbee")
    )
    return resource.create_client(clock=ManualClock())


def _nexudus(sandbox: Sandbox, **auth: str) -> ProviderClient:
    # Any: unpacked into NexudusResource next to its int and float fields.
    credentials: dict[str, Any] = auth or {
        "username": SECRETS["NEXUDUS_USERNAME"],
        "password": SECRETS["NEXUDUS_PASSWORD"],
    }
    return NexudusResource(base_url=sandbox.base_url, **fast_settings("nexudus"), **credentials).create_client(
        clock=ManualClock()
    )


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_no_secret_in_logs_errors_or_output(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    texts: list[str] = []
    issued: list[str] = []
    sandbox.update(
        bindbee=ProviderFaults(fail_status=503, fail_on=1),
        nexudus=ProviderFaults(fail_status=409, fail_on=1, latency_ms=120),
    )
    try:
        with _bindbee(sandbox) as client:
            assert list(client.fetch_days(DAY))[0].table.num_rows > 0
        with _nexudus(sandbox) as client:  # tokens expire during the walk: renewed by refresh grant
            assert list(client.fetch_days(DAY))[0].table.num_rows > 0
            assert client.token_auth.grants >= 2
            issued += sandbox.app.tokens.issued()  # every token the client was granted
        with _nexudus(sandbox, access_token=SECRETS["NEXUDUS_ACCESS_TOKEN"]) as client:
            assert list(client.fetch_days(DAY))[0].table.num_rows > 0
    finally:
        sandbox.update(bindbee=ProviderFaults(), nexudus=ProviderFaults())
    failing = [
        lambda: _bindbee(sandbox, api_key=WRONG["api_key"]),
        lambda: _bindbee(sandbox, connector_token=WRONG["connector_token"]),
        lambda: _nexudus(sandbox, username=SECRETS["NEXUDUS_USERNAME"], password=WRONG["password"]),
        lambda: _nexudus(sandbox, access_token=WRONG["api_key"]),
    ]
    for make in failing:
        with make() as client, pytest.raises(ProviderError) as caught:
            list(client.fetch_days(DAY))
        texts.append(_exception_text(caught.value))
    assert "retry" in caplog.text and "HTTP 401" in texts[0] and "HTTP 403" in texts[1] and "invalid_grant" in texts[2]
    output = capsys.readouterr()
    everything = "\n".join([caplog.text, *[r.getMessage() for r in caplog.records], *texts, output.out, output.err])
    for secret in [*SECRETS.values(), *WRONG.values(), *filter(None, issued)]:
        if secret != SECRETS["NEXUDUS_USERNAME"]:
            assert secret not in everything


def test_no_secret_in_a_dagster_run(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WRONG_BINDBEE_API_KEY", WRONG["api_key"])

    @dg.asset
    def fetched(bindbee: BindbeeResource, nexudus: NexudusResource) -> None:
        for resource in (bindbee, nexudus):
            for batch in resource.fetch_days(DAY):
                assert batch.table.num_rows > 0

    def run(api_key_var: str) -> dg.ExecuteInProcessResult:
        resources = {
            "bindbee": BindbeeResource(
                base_url=sandbox.base_url,
                api_key=dg.EnvVar(api_key_var),
                connector_token=dg.EnvVar("BINDBEE_CONNECTOR_TOKEN"),
                requests_per_minute=0,
            ),
            "nexudus": NexudusResource(
                base_url=sandbox.base_url,
                username=dg.EnvVar("NEXUDUS_USERNAME"),
                password=dg.EnvVar("NEXUDUS_PASSWORD"),
                min_interval_ms=0,
            ),
        }
        return dg.materialize([fetched], resources=resources, raise_on_error=False)

    ok, failed = run("BINDBEE_API_KEY"), run("WRONG_BINDBEE_API_KEY")
    assert ok.success and not failed.success
    failure = failed.failure_data_for_node("fetched")
    assert failure is not None and "HTTP 401" in str(failure.error)
    events = "\n".join(str(event) for result in (ok, failed) for event in result.all_events)
    events += str(ok.dagster_run.run_config) + str(failure.error)
    for secret in [*SECRETS.values(), *WRONG.values()]:
        if secret != SECRETS["NEXUDUS_USERNAME"]:
            assert secret not in events
