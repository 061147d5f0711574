"""A provider that echoes a credential back in plain text in an error body (401, 403, 422, 5xx) gets
it masked by value: no exception message, log record, run log, check metadata or file shows it.

The sandbox's `echo_credentials` knob quotes every credential the client holds (Bindbee's API key
and connector token; Nexudus' static token, or the token it was granted with the password and
refresh token that came with it) next to no sensitive name, so masking by name cannot hide them:
only the values the clients register for masking (secrets(), NexudusAuth._read_grant) do.
"""

import logging
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest

from completions_assets.http.errors import StatusError
from completions_assets.http.redaction import REDACTED, Redactor
from completions_assets.keys import LMS
from completions_assets.local.launch import INSTANCE_CONFIG, prepare_dagster_home
from completions_assets.local.run_report import check_results
from completions_assets.providers.client import ProviderClient
from completions_assets.sandbox import ProviderFaults, Sandbox
from completions_assets.sandbox.faults import ECHO_PREFIX
from completions_assets_tests.clients_support import (
    bindbee_client,
    days_between,
    nexudus_client,
    running_sandbox,
    update_faults,
)
from completions_assets_tests.test_connection_without_file_e2e import code_location, location_environ
from completions_assets_tests.test_reliability_secrets import database_values, encodings, every_file

pytestmark = pytest.mark.e2e

# The sandbox accepts these (the product's variable names) instead of its defaults.
SECRETS = {
    "BINDBEE_API_KEY": "ECHO-bindbee-key+Qz7/W9x=",
    "BINDBEE_CONNECTOR_TOKEN": "ECHO-connector-token&V4r=8",
    "NEXUDUS_USERNAME": "echo.probe@example.com",  # not a secret: never masked
    "NEXUDUS_PASSWORD": "ECHO-nexudus pass%&=?Pw",
    "NEXUDUS_ACCESS_TOKEN": "ECHO-nexudus-static/Tk4=+1",
}
MASKED = [value for name, value in SECRETS.items() if name != "NEXUDUS_USERNAME"]
# 5xx: 500 answers text/plain (Bindbee) or JSON (Nexudus), 502 an HTML page, 503 asks to retry later.
STATUSES = [401, 403, 422, 500, 502, 503]
# What the sandbox quotes to each kind of client; granted tokens are the sandbox's, read from its record.
CLIENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "bindbee": ("bindbee", {}),
    "nexudus_static": ("nexudus", {"static": True}),
    "nexudus_password": ("nexudus", {"static": False}),
}
QUOTED: dict[str, dict[str, str | None]] = {
    "bindbee": {"api_key": SECRETS["BINDBEE_API_KEY"], "connector_token": SECRETS["BINDBEE_CONNECTOR_TOKEN"]},
    "nexudus_static": {"access_token": SECRETS["NEXUDUS_ACCESS_TOKEN"]},
    "nexudus_password": {"access_token": None, "password": SECRETS["NEXUDUS_PASSWORD"], "refresh_token": None},
}
DAY = days_between("2024-01-05", "2024-01-05")
ATTEMPTS = 3


@pytest.fixture(scope="module")
def echoing() -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        with running_sandbox(days=10, records_per_day=40) as sandbox:
            yield sandbox


Quoted = Callable[[], list[tuple[str, str]]]


@pytest.fixture
def quoted(echoing: Sandbox) -> Iterator[Quoted]:
    """(kind, value) of the credentials the sandbox has quoted since the test began; faults reset after."""
    start = len(echoing.app.echoed_credentials())
    yield lambda: echoing.app.echoed_credentials()[start:]
    echoing.update(bindbee=ProviderFaults(), nexudus=ProviderFaults())


def echo(sandbox: Sandbox, provider: str, status: int, **knobs: Any) -> None:
    update_faults(sandbox, {provider: ProviderFaults(fail_status=status, echo_credentials=True, **knobs)})


def leaks(texts: dict[str, bytes], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(where, secret) for every secret found, in any common encoding, in any text."""
    needles = {form: secret for secret in secrets for form in encodings(secret) | {secret.encode()}}
    return sorted({(where, needles[n]) for where, text in texts.items() for n in needles if n in text})


def masked_echo(count: int) -> str:
    """How a body quoting `count` credentials reads once they are masked."""
    return f"{ECHO_PREFIX} {', '.join([REDACTED] * count)}."


# --- the sandbox quotes them in plain text, where masking by name does not reach -----------------


def _raw_echo(sandbox: Sandbox, client: str, status: int) -> httpx.Response:
    provider, options = CLIENTS[client]
    echo(sandbox, provider, status)
    path = "/api/lms/v1/completions" if provider == "bindbee" else "/api/content/coursecompletedlessons"
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as http:
        if provider == "bindbee":
            headers = {
                "Authorization": f"Bearer {SECRETS['BINDBEE_API_KEY']}",
                "x-connector-token": SECRETS["BINDBEE_CONNECTOR_TOKEN"],
            }
        elif options["static"]:
            headers = {"Authorization": f"Bearer {SECRETS['NEXUDUS_ACCESS_TOKEN']}"}
        else:
            form = {
                "grant_type": "password",
                "username": SECRETS["NEXUDUS_USERNAME"],
                "password": SECRETS["NEXUDUS_PASSWORD"],
            }
            granted = http.post("/api/token", data=form).json()
            headers = {"Authorization": f"Bearer {granted['access_token']}"}
        return http.get(path, headers=headers)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_the_sandbox_quotes_each_credential_where_only_masking_by_value_hides_it(
    echoing: Sandbox, quoted: Quoted, client: str, status: int
) -> None:
    response = _raw_echo(echoing, client, status)
    held = dict(quoted())
    assert response.status_code == status and set(held) == set(QUOTED[client])
    assert all(want is None or held[kind] == want for kind, want in QUOTED[client].items())
    by_name_only = Redactor().body(response)  # what a client that registered no value would show
    for kind, value in held.items():
        assert value in response.text, kind
        assert value in by_name_only, kind
    assert masked_echo(len(held)) in Redactor(held.values()).body(response)


# --- plain clients: every secret, every status ------------------------------------------------------


def _client(sandbox: Sandbox, client: str) -> ProviderClient:
    provider, options = CLIENTS[client]
    make = bindbee_client if provider == "bindbee" else nexudus_client
    return make(sandbox, max_attempts=ATTEMPTS, **options)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_an_echoed_credential_is_masked_in_exceptions_and_logs(
    echoing: Sandbox,
    quoted: Quoted,
    client: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    echo(echoing, CLIENTS[client][0], status)
    with _client(echoing, client) as plain, pytest.raises(StatusError) as caught:
        list(plain.fetch_days(DAY))
    held = quoted()
    assert {kind for kind, _ in held} == set(QUOTED[client])  # each of this client's credentials
    error = "".join(traceback.format_exception(caught.value))
    assert caught.value.status == status
    assert masked_echo(len(QUOTED[client])) in error  # the echo reached the message, masked by value
    if status >= 500:  # retried, and each retry logged the message
        assert f"gave up after {ATTEMPTS} attempts" in error
        assert caplog.text.count(masked_echo(len(QUOTED[client]))) == ATTEMPTS - 1
    output = capfd.readouterr()
    texts = {
        "exception": error.encode(),
        "log records": "\n".join([caplog.text, *(r.getMessage() for r in caplog.records)]).encode(),
        "stdout": output.out.encode(),
        "stderr": output.err.encode(),
    }
    assert not leaks(texts, [*MASKED, *(value for _, value in held)])


# --- Dagster runs: run logs, event log, check metadata and files ---------------------------------

CONNECTIONS = {
    "bindbee": {"bindbee": [{"name": "acme", "connector_token_env": "BINDBEE_CONNECTOR_TOKEN"}]},
    "nexudus": {
        "nexudus": [
            {"name": "london", "username_env": "NEXUDUS_USERNAME", "password_env": "NEXUDUS_PASSWORD"},
            {"name": "paris", "access_token_env": "NEXUDUS_ACCESS_TOKEN"},
        ]
    },
}
FIRST, LAST = "2024-01-05", "2024-01-06"
# The product's loggers in the event log too, as a deployment may configure: retries are logged there.
MANAGED_LOGS = "\npython_logs:\n  managed_python_loggers: [completions_assets]\n  python_log_level: DEBUG\n"


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    config = tmp_path / "dagster.yaml"
    config.write_text(INSTANCE_CONFIG.read_text() + MANAGED_LOGS)
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(tmp_path / "home", config)))


def _haystacks(home: Path, data: Path) -> dict[str, bytes]:
    """Every file of the instance and the data root, database values inflated, Parquet decoded."""
    texts = {str(path): path.read_bytes() for path in every_file(home, data)}
    for database in home.rglob("*.db"):
        for where, value in database_values(database):
            texts[where] = texts.get(where, b"") + b"\n" + value
    for parquet in data.rglob("*.parquet"):
        table = pq.read_table(parquet)
        texts[f"{parquet} (decoded)"] = str(table.to_pylist()).encode() + str(table.schema.metadata).encode()
    return texts


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_echoed_credentials_reach_no_run_log_check_metadata_or_file(
    echoing: Sandbox,
    quoted: Quoted,
    provider: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    environ = location_environ(tmp_path, echoing.base_url, CONNECTIONS[provider])
    assets, resources = code_location(monkeypatch, environ | SECRETS)  # secrets: read when a step starts
    data = Path(environ["COMPLETIONS_DATA_ROOT"])
    keys = [dg.AssetKey([f"{provider}_completions", entry["name"]]) for entry in CONNECTIONS[provider][provider]]
    tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
    instance = _instance(tmp_path)

    def run() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            resources=resources,
            instance=instance,
            tags=tags,
            selection=dg.AssetSelection.assets(*keys, LMS),
            raise_on_error=False,
        )

    # A 500 quoting the credentials, retried: the run succeeds; files, metadata and checks are written.
    echo(echoing, provider, 500, fail_on=1)
    retried = run()
    assert retried.success and quoted()
    assert {e.check_name for e in check_results(instance, retried.run_id)} >= {"all_connections_present"}
    retry_logs = [e.message for e in instance.all_logs(retried.run_id) if ECHO_PREFIX in e.message]
    assert retry_logs and all(REDACTED in message for message in retry_logs)
    # A 401 quoting them on every request: every connection fails with it, in the run's log.
    echo(echoing, provider, 401)
    failed = run()
    said = [entry.message for entry in instance.all_logs(failed.run_id)]
    said += [str(e.step_failure_data.error) for e in failed.all_events if e.is_step_failure]
    assert any("HTTP 401" in text and f"{ECHO_PREFIX} {REDACTED}" in text for text in said)
    held = quoted()
    clients = [QUOTED[client] for client, (name, _) in CLIENTS.items() if name == provider]
    assert {kind for kind, _ in held} == {kind for quotes in clients for kind in quotes}
    assert {value for _, value in held} >= {value for quotes in clients for value in quotes.values() if value}
    instance.dispose()

    output = capfd.readouterr()
    texts = _haystacks(tmp_path / "home", data)
    assert list(data.rglob("*.parquet")) and any(
        f"{ECHO_PREFIX} {REDACTED}".encode() in text for where, text in texts.items() if ".db:" in where
    )  # the search does see the masked echo in the event log
    texts["events"] = "\n".join(str(e) for r in (retried, failed) for e in r.all_events).encode()
    texts["log records"] = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records)]).encode()
    texts["stdout"], texts["stderr"] = output.out.encode(), output.err.encode()
    assert not leaks(texts, [*MASKED, *(value for _, value in held)])
