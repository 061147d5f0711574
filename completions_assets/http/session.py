"""The shared HTTP layer: one httpx.Client per client object, one send loop for retries.

Every request of every provider goes through `HttpSession.get_json`: the pacer
grants a slot, the request is sent, and failures are classified once
(errors.status_error) and retried with bounded exponential backoff and
jitter, honouring `Retry-After` (seconds or HTTP-date) up to a cap.
"""

import functools
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Collection, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from completions_assets.http.errors import (
    PayloadError,
    ProviderError,
    RateLimitError,
    status_error,
    transport_error,
)
from completions_assets.http.pacing import Clock, Pacer
from completions_assets.http.redaction import Label, Redactor
from completions_assets.http.retry import RetrySettings, parse_retry_after, retry_delay

logger = logging.getLogger(__name__)


def user_agent() -> str:
    """Names this process, so a provider (and the sandbox's request log) can tell concurrent clients apart."""
    return f"completions_assets (pid {os.getpid()})"


@dataclass
class RequestStats:
    """Counters of one walk; a walk (or a stretch of its pages) runs on one thread, so no locking."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    rate_wait_seconds: float = 0.0

    def add(self, other: "RequestStats") -> None:
        """Counts `other` (pages fetched on another thread) in with these."""
        self.requests += other.requests
        self.pages += other.pages
        self.retries += other.retries
        self.rate_wait_seconds += other.rate_wait_seconds


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client of the process: building one (loading the CA bundle) takes
    about 40 ms, which a step fetching hundreds of connections would pay for each of them."""
    return httpx.create_ssl_context()


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
        headers={"Accept": "application/json", "User-Agent": user_agent(), **headers},
        auth=auth,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        transport=transport,
        verify=_tls(),
    )


PACING = "completions_assets.pacing"  # request extension: (stop event, RequestStats) of the send


class PacedAuth(httpx.Auth):
    """Takes a pacing slot right before each request of an auth flow goes out, token grants
    included, and releases it when the response is in: a slot is never held while the flow
    waits for something else (a token), and a token grant counts against the limits too."""

    def __init__(self, pacer: Pacer, inner: httpx.Auth | None) -> None:
        self._pacer = pacer
        self._inner = inner or httpx.Auth()
        self.requires_response_body = self._inner.requires_response_body

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        stop, stats = request.extensions.get(PACING, (None, None))
        flow = self._inner.auth_flow(request)
        outgoing = next(flow)
        while True:
            slot = self._pacer.acquire(stop)
            if stats is not None:
                stats.rate_wait_seconds += slot.waited
            try:
                response = yield outgoing
            finally:
                slot.release()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return


class HttpSession:
    """One httpx.Client plus the retry/pacing policy of one provider; thread-safe.

    The client's auth is wrapped in PacedAuth: every request it sends is paced.
    """

    def __init__(
        self,
        provider: str,
        client: httpx.Client,
        *,
        retry: RetrySettings,
        pacer: Pacer,
        clock: Clock,
        redactor: Redactor,
        throttle_statuses: Collection[int] = (429,),
        on_success: Callable[[httpx.Response], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        client.auth = PacedAuth(pacer, client.auth)
        self.client = client
        self.retry = retry
        self.pacer = pacer
        self.clock = clock
        self.redactor = redactor
        self.throttle_statuses = tuple(throttle_statuses)
        self._on_success = on_success
        self._rng = rng or random.Random()

    def close(self) -> None:
        self.client.close()

    def get_json(
        self,
        path: str,
        params: Mapping[str, str],
        stats: RequestStats,
        *,
        what: Label,
        stop: threading.Event | None = None,
    ) -> Any:
        """GETs `path` with retries and returns the decoded JSON body.

        Raises:
            ProviderError: a non-retryable failure, or the last one after max_attempts.
            Stopped: `stop` was set during a wait.
        """
        return self.send_json(self.client.build_request("GET", path, params=params), stats, what=what, stop=stop)

    def send_json(
        self, request: httpx.Request, stats: RequestStats, *, what: Label, stop: threading.Event | None = None
    ) -> Any:
        """Sends a request built on `self.client` with retries; returns the decoded JSON body.

        Raises:
            ProviderError: a non-retryable failure, or the last one after max_attempts.
            Stopped: `stop` was set during a pacing or retry wait.
        """
        request.extensions[PACING] = (stop, stats)
        for attempt in range(1, self.retry.max_attempts + 1):
            stats.requests += 1
            outcome = self._attempt(request, what)
            if not isinstance(outcome, ProviderError):
                return outcome
            error = outcome
            if not error.retryable or attempt == self.retry.max_attempts:
                if attempt > 1:
                    error.add_note(f"gave up after {attempt} attempts")
                raise error
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None and retry_after > self.retry.retry_after_cap_s:
                # Retrying sooner than asked only earns another refusal: fail now, saying why.
                error.add_note(
                    f"the provider asked to wait {retry_after:.0f} s before retrying, more than "
                    f"retry_after_cap_s ({self.retry.retry_after_cap_s:.0f} s): not retried"
                )
                raise error
            delay = retry_delay(self.retry, attempt, retry_after, self._rng)
            if isinstance(error, RateLimitError):
                self.pacer.pause_for(delay)  # the budget is shared: hold every thread back
                stats.rate_wait_seconds += delay
            logger.warning("%s; retry %d/%d in %.2fs", error, attempt, self.retry.max_attempts - 1, delay)
            self.clock.sleep(delay, stop)
            stats.retries += 1
        raise AssertionError("unreachable")

    def _attempt(self, request: httpx.Request, what: Label) -> Any:
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
        return status_error(
            self.provider,
            response,
            redactor=self.redactor,
            throttle_statuses=self.throttle_statuses,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now_epoch=self.clock.time()),
        )

    def _decode(self, response: httpx.Response, what: Label) -> Any:
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
