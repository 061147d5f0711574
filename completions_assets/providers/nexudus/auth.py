"""Nexudus authentication as an httpx.Auth flow: static bearer token or password grant.

The token endpoint is `POST {base}/api/token` with a form-encoded body (JSON is
rejected). `expires_in` is not trusted: a 401 triggers a refresh (refresh grant,
falling back to the password grant) and a resend. Concurrent walks share the
flow, so the token state is locked and a token that another thread already
replaced is not refreshed twice: the resend takes the replacement. Requests in
flight when a token runs out all get 401, and the replacement may run out before
their resends arrive, so a resend refused with a token another thread renewed
tries the current one, at most MAX_SHARED times, then renews one itself. Only a
401 to a token renewed for the request itself stands: it answered that token's
first use, so no other request can have used it up.
"""

import threading
from collections.abc import Generator

import httpx

from completions_assets.http.errors import AuthenticationError, PayloadError, status_error
from completions_assets.http.pacing import Clock
from completions_assets.http.redaction import Redactor
from completions_assets.http.retry import parse_retry_after

TOKEN_PATH = "/api/token"
# Tokens renewed by other walks that one request tries before it renews one itself.
MAX_SHARED = 2


class NexudusAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        token_url: httpx.URL,
        *,
        access_token: str | None,
        username: str | None,
        password: str | None,
        redactor: Redactor,
        clock: Clock,
        throttle_statuses: tuple[int, ...],
        provider: str = "nexudus",
    ) -> None:
        self._token_url = token_url
        self._username = username
        self._password = password
        self._redactor = redactor
        self._clock = clock
        self._provider = provider
        self._throttle_statuses = throttle_statuses
        self._lock = threading.Lock()
        self._access_token = access_token
        self._refresh_token: str | None = None
        self.grants = 0  # token requests made, for tests and logs

    @property
    def can_grant(self) -> bool:
        return bool(self._username and self._password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._access_token
        if token is None:
            with self._lock:
                if self._access_token is None:
                    self._access_token = yield from self._renew(request)
                token = self._access_token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        shared = 0
        while response.status_code == 401 and (self.can_grant or self._refresh_token):
            with self._lock:
                if self._access_token == token or shared == MAX_SHARED:
                    # The new token is published only once its first use, this resend, is answered
                    # (the lock is held till then): a 401 to it is no race with other walks, and stands.
                    token = yield from self._renew(request)
                    request.headers["Authorization"] = f"Bearer {token}"
                    response = yield request
                    if response.status_code != 401:
                        self._access_token = token
                    return
                token = self._access_token  # another walk renewed it meanwhile; it may run out too
            shared += 1
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request

    def _renew(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, str]:
        """A new access token, its refresh token kept; the caller holds the lock."""
        response: httpx.Response | None = None
        if self._refresh_token:
            response = yield from self._grant(
                request, {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            )
            if response.status_code != 200 and self.can_grant:
                response = None  # refresh tokens expire too: fall back to the password grant
        if response is None:
            if not self.can_grant:
                raise AuthenticationError(
                    self._provider,
                    status=401,
                    method="GET",
                    url=self._redactor.url(self._token_url),
                    body="token rejected and no username/password to renew it",
                )
            response = yield from self._grant(
                request, {"grant_type": "password", "username": self._username or "", "password": self._password or ""}
            )
        token, self._refresh_token = self._read_grant(response)
        return token

    def _grant(
        self, request: httpx.Request, form: dict[str, str]
    ) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
        # Paced like every request of the flow (PacedAuth): the token endpoint shares the rate limits.
        self.grants += 1
        # Named like the request it serves, so the provider's log tells apart what it was for.
        headers = {"Accept": "application/json", "User-Agent": request.headers.get("User-Agent", "")}
        return (yield httpx.Request("POST", self._token_url, data=form, headers=headers))

    def _read_grant(self, response: httpx.Response) -> tuple[str, str | None]:
        if response.status_code != 200:
            raise status_error(
                self._provider,
                response,
                redactor=self._redactor,
                throttle_statuses=self._throttle_statuses,
                retry_after=parse_retry_after(response.headers.get("Retry-After"), now_epoch=self._clock.time()),
                detail="token grant refused",
                refused_grant=True,
            )
        try:
            grant = response.json()
            token = grant["access_token"]
        except (ValueError, KeyError, TypeError):
            raise PayloadError(
                self._provider, f"POST {self._redactor.url(self._token_url)}: token response has no access_token"
            ) from None
        if not isinstance(token, str) or not token:
            raise PayloadError(self._provider, "token response has an empty access_token")
        self._redactor.add_secret(token)
        refresh = grant.get("refresh_token") if isinstance(grant, dict) else None
        if isinstance(refresh, str) and refresh:
            self._redactor.add_secret(refresh)
        return token, refresh if isinstance(refresh, str) and refresh else None
