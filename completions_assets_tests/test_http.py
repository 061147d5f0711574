"""The shared HTTP layer: Retry-After, backoff, URL policy, which failures are retried."""

import email.utils
import random
import threading

import httpx
import pytest

from completions_assets.http.errors import (
    AuthenticationError,
    BadRequestError,
    PayloadError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StatusError,
    TransportError,
)
from completions_assets.http.pacing import Pacer, RateLimit, Stopped, SystemClock
from completions_assets.http.redaction import Redactor
from completions_assets.http.retry import parse_retry_after, retry_delay
from completions_assets.http.session import HttpSession, RequestStats
from completions_assets.settings import ConfigurationError, check_base_url
from completions_assets_tests.clients_support import Reply, Script, json_reply, retry_settings, session

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
    ],
)
def test_retry_after_seconds_or_http_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now_epoch=NOW) == expected


@pytest.mark.parametrize(
    ("retry", "retry_after", "low", "high"),
    [
        (1, None, 0.75, 1.0),  # initial 1 s, up to 25 % jitter shaved off
        (2, None, 1.5, 2.0),
        (3, None, 3.0, 4.0),
        (6, None, 6.0, 8.0),  # capped at backoff_max_s
        (1, 5.0, 5.0, 5.0),  # Retry-After wins over backoff
        (1, 500.0, 60.0, 60.0),  # ... up to the cap
        (3, 0.0, 0.0, 0.0),
    ],
)
def test_backoff_delays(retry: int, retry_after: float | None, low: float, high: float) -> None:
    settings = retry_settings(backoff_initial_s=1.0, backoff_max_s=8.0, retry_after_cap_s=60.0)
    rng = random.Random(3)
    delays = [retry_delay(settings, retry, retry_after, rng) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    if retry_after is None:
        assert len(set(delays)) > 1  # jittered


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.bindbee.dev", True),
        ("https://api-eu.bindbee.dev/", True),
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.2:8000", True),
        ("http://localhost:9", True),
        ("http://[::1]:8080", True),
        ("http://api.bindbee.dev", False),
        ("http://localhost.evil.example", False),
        ("http://10.0.0.1", False),
        ("ftp://127.0.0.1", False),
        ("https://user:pw@api.bindbee.dev", False),
        ("api.bindbee.dev", False),
    ],
)
def test_base_url_must_be_https_unless_loopback(url: str, ok: bool) -> None:
    if ok:
        check_base_url(url, name="bindbee")
    else:
        with pytest.raises(ConfigurationError, match="bindbee"):
            check_base_url(url, name="bindbee")


OK = json_reply(200, {"ok": True})


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (json_reply(408, {}), ServerError),
        (json_reply(429, {"detail": "slow down"}, {"Retry-After": "3"}), RateLimitError),
        (json_reply(500, {}), ServerError),
        (httpx.Response(502, text="<html>bad gateway</html>"), ServerError),
        (json_reply(503, {}), ServerError),
        (json_reply(504, {}), ServerError),
        (httpx.ConnectError("refused"), TransportError),
        (httpx.ReadTimeout("slow"), RequestTimeoutError),
        (httpx.RemoteProtocolError("peer closed connection without sending complete message body"), TransportError),
        (httpx.ReadError("connection reset"), TransportError),
    ],
)
def test_transient_failures_are_retried_then_recover(failure: Reply, error: type) -> None:
    script = Script([failure, failure, OK])
    http, clock = session(script)
    stats = RequestStats()
    assert http.get_json("/x", {"a": "1"}, stats, what="page 1") == {"ok": True}
    assert (stats.requests, stats.retries) == (3, 2)
    assert len(clock.sleeps) == 2
    if error is RateLimitError:
        assert clock.sleeps == [3.0, 3.0] and stats.rate_wait_seconds >= 6.0


@pytest.mark.parametrize(
    ("failure", "error"), [(json_reply(503, {}), ServerError), (httpx.ConnectTimeout("t"), RequestTimeoutError)]
)
def test_retries_are_bounded(failure: Reply, error: type) -> None:
    script = Script([failure] * 3)
    http, clock = session(script, max_attempts=3)
    with pytest.raises(error) as caught:
        http.get_json("/x", {}, RequestStats(), what="page 1")
    assert len(script.requests) == 3 and len(clock.sleeps) == 2
    assert "gave up after 3 attempts" in "".join(caught.value.__notes__)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequestError),
        (422, BadRequestError),
        (409, BadRequestError),
    ],
)
def test_client_errors_fail_at_once_with_detail(status: int, error: type) -> None:
    script = Script([json_reply(status, {"detail": f"reason-{status}"})])
    http, clock = session(script)
    with pytest.raises(error) as caught:
        http.get_json("/items", {"page_size": "100"}, RequestStats(), what="page 1")
    message = str(caught.value)
    assert len(script.requests) == 1 and clock.sleeps == []
    assert message.startswith("acme: HTTP ") and str(status) in message
    assert f"reason-{status}" in message and "https://api.example.test/items?page_size=100" in message
    assert isinstance(caught.value, StatusError) and caught.value.status == status


def test_409_with_retry_after_is_throttling_when_the_provider_says_so() -> None:
    throttled = httpx.Response(409, headers={"Retry-After": "2"})
    script = Script([throttled, OK])
    http, clock = session(script, throttle_statuses=(409, 429))
    assert http.get_json("/x", {}, RequestStats(), what="page 1") == {"ok": True}
    assert clock.sleeps == [2.0]


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html><body>maintenance</body></html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, text='{"items": [1, 2'),
        httpx.Response(200, text=""),
    ],
)
def test_a_2xx_body_that_is_not_json_is_a_payload_error(reply: httpx.Response) -> None:
    script = Script([reply])
    http, _ = session(script)
    with pytest.raises(PayloadError, match=r"acme: page 7: HTTP 200 body is not JSON"):
        http.get_json("/x", {}, RequestStats(), what="page 7")
    assert len(script.requests) == 1


def test_error_messages_are_sanitised_and_truncated() -> None:
    body = {"detail": "bad token SECRET-acme-token-5678", "access_token": "leak-me-please", "pad": "x" * 2000}
    script = Script([json_reply(401, body)])
    http, _ = session(script)
    with pytest.raises(AuthenticationError) as caught:
        http.get_json("/x", {"token": "query-secret", "q": "1"}, RequestStats(), what="page 1")
    message = str(caught.value)
    for secret in ("SECRET-acme-token-5678", "leak-me-please", "query-secret"):
        assert secret not in message
    assert "[REDACTED]" in message and "q=1" in message
    assert len(message) < 700


def test_a_long_retry_after_within_the_cap_is_waited_in_full() -> None:
    script = Script([httpx.Response(429, headers={"Retry-After": "600"}), OK])
    http, clock = session(script)  # the default cap: 15 minutes
    assert http.get_json("/x", {}, RequestStats(), what="page 1") == {"ok": True}
    assert clock.sleeps == [600.0]


def test_a_retry_after_above_the_cap_fails_at_once_naming_the_wait() -> None:
    script = Script([httpx.Response(429, headers={"Retry-After": "3600"})])
    http, clock = session(script)
    with pytest.raises(RateLimitError) as caught:
        http.get_json("/x", {}, RequestStats(), what="page 1")
    assert clock.sleeps == [] and len(script.requests) == 1
    assert "asked to wait 3600 s before retrying, more than retry_after_cap_s (900 s)" in "".join(
        caught.value.__notes__
    )


def test_a_retry_wait_ends_as_soon_as_the_fetch_is_stopped() -> None:
    script = Script([httpx.Response(429, headers={"Retry-After": "300"}), OK])
    client = httpx.Client(base_url="https://api.example.test", transport=script.transport())
    stop = threading.Event()
    http = HttpSession(
        "acme",
        client,
        retry=retry_settings(),
        pacer=Pacer([], clock=SystemClock()),
        clock=SystemClock(),
        redactor=Redactor([]),
    )
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            http.get_json("/x", {}, RequestStats(), what="page 1", stop=stop)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is asserted
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    while len(script.requests) < 1:  # bounded by the 300 s wait it is about to enter
        worker.join(0.01)
    stop.set()
    worker.join(5)
    assert not worker.is_alive()  # well before the 300 s it was asked to wait
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped) and len(script.requests) == 1


def test_a_pacing_wait_ends_as_soon_as_the_fetch_is_stopped() -> None:
    pacer = Pacer([RateLimit(1, 300.0)], clock=SystemClock())
    pacer.acquire().release()  # the next slot is 300 s away
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        pacer.acquire(stop)
