"""Every sandbox fault knob, per provider: recovered with exact data, or a clear error."""

from collections.abc import Iterator
from typing import Any

import pytest

from completions_assets.http.errors import (
    AuthenticationError,
    BadRequestError,
    PaginationLoopError,
    PayloadError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from completions_assets.http.pacing import ManualClock
from completions_assets.providers.client import ProviderClient
from completions_assets.sandbox import Sandbox
from completions_assets.sandbox.config import ProviderFaults as F
from completions_assets_tests.clients_support import (
    Oracle,
    bindbee_client,
    days_between,
    nexudus_client,
    running_sandbox,
    update_faults,
)

pytestmark = pytest.mark.integration

DAYS = days_between("2024-01-10", "2024-01-10")  # one window, in turn: Bindbee 6 pages, Nexudus 13 (widened)
SECRETS = ("sandbox-bindbee-key", "sandbox-connector-token", "sandbox-password", "sandbox-nexudus-token")

RECOVERED: list[tuple[str, F, bool]] = [  # provider, knobs, whether a retry is needed
    ("bindbee", F(fail_status=503, fail_on=2), True),
    ("bindbee", F(fail_status=429, fail_on=1), True),
    ("bindbee", F(fail_status=429, fail_on=3, retry_after=None), True),
    ("bindbee", F(fail_status=500, fail_every=2), True),
    ("bindbee", F(fail_status=502, fail_on=3), True),
    ("bindbee", F(fail_status=408, fail_on=1), True),
    ("bindbee", F(disconnect_on=2), True),
    ("bindbee", F(html_on=4, html_status=503), True),
    ("bindbee", F(latency_ms=20), False),
    ("nexudus", F(fail_status=409, fail_on=2), True),
    ("nexudus", F(fail_status=409, fail_on=2, retry_after=None), True),
    ("nexudus", F(fail_status=429, fail_on=1), True),
    ("nexudus", F(fail_status=503, fail_on=1), True),
    ("nexudus", F(fail_status=500, fail_every=3), True),
    ("nexudus", F(fail_status=502, fail_on=13), True),  # the last page
    ("nexudus", F(disconnect_on=1), True),
    ("nexudus", F(html_on=5, html_status=502), True),
    ("nexudus", F(latency_ms=20), False),
]

FAILED: list[tuple[str, F, type[Exception], str]] = [  # provider, knobs, error, message pattern
    ("bindbee", F(fail_status=503), ServerError, r"HTTP 503 Service Unavailable .*Service Unavailable"),
    ("bindbee", F(fail_status=429, retry_after="0"), RateLimitError, r"HTTP 429"),
    ("bindbee", F(fail_status=400, fail_on=2), BadRequestError, r"HTTP 400 Bad Request .*cursor="),
    ("bindbee", F(fail_status=404, fail_on=1), BadRequestError, r"HTTP 404"),
    ("bindbee", F(html_on=2), PayloadError, r"page 2 .*is not JSON \(Content-Type text/html\): <html>"),
    ("bindbee", F(truncate_on=3), PayloadError, r"page 3 .*is not JSON"),
    ("bindbee", F(repeat_cursor=True), PaginationLoopError, r"page 2 .*already followed"),
    ("nexudus", F(fail_status=500), ServerError, r"HTTP 500 .*An error has occurred"),
    ("nexudus", F(fail_status=409), RateLimitError, r"HTTP 409 Conflict"),
    ("nexudus", F(fail_status=403, fail_on=1), AuthenticationError, r"HTTP 403 Forbidden"),
    (
        "nexudus",
        F(unsuccessful_on=2),
        PayloadError,
        r"page 2 .*WasSuccessful is false: The request could not be completed",
    ),
    ("nexudus", F(html_on=1), PayloadError, r"page 1 .*is not JSON"),
    ("nexudus", F(truncate_on=2), PayloadError, r"page 2 .*is not JSON"),
    ("nexudus", F(repeat_cursor=True), PaginationLoopError, r"page 2 .*asked for page 2, got CurrentPage 1"),
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(days=20, records_per_day=550) as running:
        yield running


@pytest.fixture(scope="module")
def oracles(sandbox: Sandbox) -> dict[str, Oracle]:
    return {provider: Oracle(sandbox, provider) for provider in ("bindbee", "nexudus")}


def _client(sandbox: Sandbox, provider: str, clock: ManualClock, **options: Any) -> ProviderClient:
    make = bindbee_client if provider == "bindbee" else nexudus_client
    return make(sandbox, clock=clock, **({"max_concurrent_requests": 1} | options))  # requests in a known order


def _with_faults(sandbox: Sandbox, provider: str, faults: F) -> None:
    update_faults(sandbox, {provider: faults})


def _ids(case: tuple[Any, ...]) -> str:
    knobs = {k: v for k, v in vars(case[1]).items() if v != getattr(F(), k)}
    return f"{case[0]}-" + "-".join(f"{k}={v}" for k, v in knobs.items())


@pytest.mark.parametrize(("provider", "faults", "retried"), RECOVERED, ids=[_ids(c) for c in RECOVERED])
def test_recovered_with_exact_data(
    sandbox: Sandbox, oracles: dict[str, Oracle], provider: str, faults: F, retried: bool
) -> None:
    _with_faults(sandbox, provider, faults)
    clock = ManualClock()
    try:
        with _client(sandbox, provider, clock) as client:
            batches = list(client.fetch_days(DAYS))
    finally:
        _with_faults(sandbox, provider, F())
    for batch in batches:
        assert batch.table.to_pylist() == oracles[provider].rows_in(batch.day.start, batch.day.end)
    assert (batches[0].stats.retries > 0) == retried
    assert len(clock.sleeps) == batches[0].stats.retries  # every retry slept, on the injected clock only
    if faults.fail_status in (409, 429) and faults.retry_after == "1":
        assert 1.0 in clock.sleeps  # Retry-After honoured


@pytest.mark.parametrize(("provider", "faults", "error", "message"), FAILED, ids=[_ids(c) for c in FAILED])
def test_fails_with_a_clear_error(
    sandbox: Sandbox, provider: str, faults: F, error: type[Exception], message: str
) -> None:
    _with_faults(sandbox, provider, faults)
    try:
        with (
            _client(sandbox, provider, ManualClock()) as client,
            pytest.raises(error, match=f"^{provider}: {message}") as caught,
        ):
            list(client.fetch_days(DAYS))
    finally:
        _with_faults(sandbox, provider, F())
    assert not any(secret in str(caught.value) for secret in SECRETS)


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_a_read_timeout_is_retried_then_reported(sandbox: Sandbox, provider: str) -> None:
    _with_faults(sandbox, provider, F(latency_ms=300))
    clock = ManualClock()
    try:
        with _client(sandbox, provider, clock, read_timeout_s=0.05, max_attempts=2) as client:
            with pytest.raises(RequestTimeoutError, match=f"^{provider}: GET .* timed out"):
                list(client.fetch_days(DAYS[:1]))
    finally:
        _with_faults(sandbox, provider, F())
    assert len(clock.sleeps) == 1
