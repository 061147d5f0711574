"""The shared HTTP layer: one httpx.Client per client object, one send loop for retries.

Every request of every provider goes through `HttpSession.get_json`: the pacer
grants a slot, the request is sent, and failures are classified once
(errors.status_error) and retried with bounded exponential backoff and
jitter, honouring `Retry-After` (seconds or HTTP-date) up to a cap.
"""

import datetime as dt
import email.utils
import ipaddress
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from completions_assets.http.errors import (
    ConfigurationError,
    PayloadError,
    ProviderError,
    RateLimitError,
    status_error,
    transport_error,
)
from completions_assets.http.pacing import Clock, Pacer
from completions_assets.http.redaction import Redactor

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff; `jitter` is the fraction shaved off at random."""

    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, retry_number: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.retry_after_cap_s)
        base = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (retry_number - 1))
        return base * (1 - self.jitter * rng.random())


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = when.timestamp() - now_epoch
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def validate_base_url(provider: str, base_url: str) -> httpx.URL:
    """Refuses anything but https, except on loopback, before a token can be sent."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(provider, f"invalid base URL: {exc}") from None
    if url.userinfo:
        raise ConfigurationError(provider, "base URL must not carry credentials")
    if not url.host:
        raise ConfigurationError(provider, f"base URL has no host: {url.scheme}://…")
    if url.scheme == "https" or (url.scheme == "http" and is_loopback(url.host)):
        return url
    raise ConfigurationError(
        provider, f"base URL must be https:// (plain http only on loopback), got {url.scheme}://{url.host}"
    )


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class RequestStats:
    """Counters of one sweep; a sweep runs on one thread, so no locking."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    rate_wait_seconds: float = 0.0


Throttled = Callable[[httpx.Response], bool]


def _is_429(response: httpx.Response) -> bool:
    return response.status_code == 429


def build_client(
    base_url: httpx.URL,
    *,
    headers: Mapping[str, str],
    auth: httpx.Auth | None,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The one httpx.Client of a provider client; redirects are not followed so a token never leaves."""
    return httpx.Client(
        base_url=base_url,
        headers={"Accept": "application/json", **headers},
        auth=auth,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        transport=transport,
    )


class HttpSession:
    """One httpx.Client plus the retry/pacing policy of one provider; thread-safe."""

    def __init__(
        self,
        provider: str,
        client: httpx.Client,
        *,
        retry: RetryPolicy,
        pacer: Pacer,
        clock: Clock,
        redactor: Redactor,
        is_throttled: Throttled = _is_429,
        on_success: Callable[[httpx.Response], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.client = client
        self.retry = retry
        self.pacer = pacer
        self.clock = clock
        self.redactor = redactor
        self._is_throttled = is_throttled
        self._on_success = on_success
        self._rng = rng or random.Random()

    def close(self) -> None:
        self.client.close()

    def get_json(self, path: str, params: Mapping[str, str], stats: RequestStats, *, what: str) -> Any:
        """GETs `path` with retries and returns the decoded JSON body.

        Raises:
            ProviderError: a non-retryable failure, or the last one after max_attempts.
        """
        return self.send_json(self.client.build_request("GET", path, params=params), stats, what=what)

    def send_json(self, request: httpx.Request, stats: RequestStats, *, what: str) -> Any:
        """Sends a request built on `self.client` with retries; returns the decoded JSON body.

        Raises:
            ProviderError: a non-retryable failure, or the last one after max_attempts.
        """
        for attempt in range(1, self.retry.max_attempts + 1):
            slot = self.pacer.acquire()
            stats.rate_wait_seconds += slot.waited
            stats.requests += 1
            try:
                outcome = self._attempt(request, what)
            finally:
                slot.release()
            if not isinstance(outcome, ProviderError):
                return outcome
            error = outcome
            if not error.retryable or attempt == self.retry.max_attempts:
                if attempt > 1:
                    error.add_note(f"gave up after {attempt} attempts")
                raise error
            delay = self.retry.delay(attempt, getattr(error, "retry_after", None), self._rng)
            if isinstance(error, RateLimitError):
                self.pacer.pause_for(delay)  # the budget is shared: hold every thread back
                stats.rate_wait_seconds += delay
            logger.warning("%s; retry %d/%d in %.2fs", error, attempt, self.retry.max_attempts - 1, delay)
            self.clock.sleep(delay)
            stats.retries += 1
        raise AssertionError("unreachable")

    def _attempt(self, request: httpx.Request, what: str) -> Any:
        """One send: the decoded body, or the ProviderError describing the failure."""
        began = time.perf_counter()
        try:
            response = self.client.send(request)
        except httpx.TransportError as exc:
            return transport_error(self.provider, exc, request, redactor=self.redactor)
        except ProviderError as exc:  # raised by an auth flow (token endpoint)
            return exc
        if logger.isEnabledFor(logging.DEBUG):  # redacting a URL costs as much as building it
            logger.debug(
                "%s GET %s -> %d (%.0f ms)",
                self.provider,
                self.redactor.url(request.url),
                response.status_code,
                (time.perf_counter() - began) * 1000,
            )
        if response.is_success:
            if self._on_success is not None:
                self._on_success(response)
            return self._decode(response, what)
        throttled = self._is_throttled(response)
        return status_error(
            self.provider,
            response,
            redactor=self.redactor,
            throttle_statuses=(response.status_code,) if throttled else (),
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now_epoch=self.clock.time()),
        )

    def _decode(self, response: httpx.Response, what: str) -> Any:
        content_type = response.headers.get("Content-Type", "")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = self.redactor.body(response)
            raise PayloadError(
                self.provider,
                f"{what}: HTTP {response.status_code} body is not JSON "
                f"(Content-Type {content_type or 'missing'}): {body}",
            ) from None
