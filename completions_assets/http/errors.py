"""Errors raised by the provider clients.

    ProviderError                 every client failure; names the provider
    ├── TransportError            no complete response: connect/read failure, body cut short  [retried]
    │   └── RequestTimeoutError   connect, read, write or pool timeout                         [retried]
    ├── StatusError               an HTTP error status; .status, .url (sanitised), .body (snippet)
    │   ├── AuthenticationError   401, 403, a refused token grant
    │   ├── BadRequestError       400, 404, 422 and any other status not listed here
    │   ├── RateLimitError        429, and Nexudus 409 (its throttling answer)                 [retried]
    │   └── ServerError           408 and 5xx                                                  [retried]
    ├── PayloadError              a 2xx body that is not the documented shape (names the page)
    └── PaginationLoopError       a cursor or page that repeats, or the page cap reached

A bad setting is not a provider failure: it is `settings.ConfigurationError`,
raised before any request. Status errors are made by `status_error` only, so a status maps to one class in
one place. Every message is built from sanitised parts: it names the provider,
the status, the URL without secrets and the first part of the body.
"""

from collections.abc import Collection
from typing import ClassVar

import httpx

from completions_assets.http.redaction import Redactor


class ProviderError(Exception):
    """Base class; `retryable` says whether the shared send loop tries again."""

    retryable: ClassVar[bool] = False

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class TransportError(ProviderError):
    retryable = True


class RequestTimeoutError(TransportError):
    pass


class StatusError(ProviderError):
    def __init__(
        self,
        provider: str,
        *,
        status: int,
        method: str,
        url: str,
        body: str,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        reason = httpx.codes.get_reason_phrase(status)
        extra = f" ({detail})" if detail else ""
        super().__init__(provider, f"HTTP {status} {reason} for {method} {url}{extra}: {body}")
        self.status = status
        self.url = url
        self.body = body
        self.retry_after = retry_after


class AuthenticationError(StatusError):
    pass


class BadRequestError(StatusError):
    pass


class RateLimitError(StatusError):
    retryable = True


class ServerError(StatusError):
    retryable = True


class PayloadError(ProviderError):
    pass


class PaginationLoopError(ProviderError):
    pass


def status_class(status: int, *, throttle_statuses: Collection[int] = (429,)) -> type[StatusError]:
    if status in throttle_statuses or status == 429:
        return RateLimitError
    if status in (401, 403):
        return AuthenticationError
    if status == 408 or 500 <= status <= 599:
        return ServerError
    return BadRequestError


def status_error(
    provider: str,
    response: httpx.Response,
    *,
    redactor: Redactor,
    throttle_statuses: Collection[int] = (429,),
    retry_after: float | None = None,
    detail: str = "",
    refused_grant: bool = False,
) -> StatusError:
    """The one factory of status errors: picks the class and builds a safe message.

    `refused_grant` marks a token endpoint's answer: its 4xx means bad credentials.
    """
    cls = status_class(response.status_code, throttle_statuses=throttle_statuses)
    if refused_grant and cls is BadRequestError:
        cls = AuthenticationError
    return cls(
        provider,
        status=response.status_code,
        method=response.request.method,
        url=redactor.url(response.request.url),
        body=redactor.body(response),
        detail=detail,
        retry_after=retry_after,
    )


def transport_error(
    provider: str, exc: httpx.TransportError, request: httpx.Request, *, redactor: Redactor
) -> TransportError:
    cls = RequestTimeoutError if isinstance(exc, httpx.TimeoutException) else TransportError
    what = "timed out" if cls is RequestTimeoutError else "failed"
    reason = redactor.text(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return cls(provider, f"{request.method} {redactor.url(request.url)} {what}: {reason}")
