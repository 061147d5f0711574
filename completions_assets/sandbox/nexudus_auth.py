"""Nexudus OAuth2 token endpoint (`POST /api/token`) and bearer/basic checks."""

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qs

from .connections import Account
from .reply import Reply, json_reply

TOKEN_PATH = "/api/token"
_JSON = "application/json;charset=UTF-8"


def _oauth_error(error: str, description: str | None = None) -> Reply:
    body = {"error": error} if description is None else {"error": error, "error_description": description}
    return json_reply(400, body, {"Cache-Control": "no-store"}, content_type=_JSON)


class TokenStore:
    """Issued access tokens (expiring, optionally after a few uses) and refresh tokens (single use), per account.

    Accounts are sandbox connections: a principal is the connection name. A revoked
    account's static token, issued tokens and Basic credentials stop working, and
    its grants are refused.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        lifetime_s: float,
        clock: Callable[[], float] = time.monotonic,
        revoked: Callable[[str], bool] = lambda connection: False,
    ) -> None:
        self._logins = {(a.username, a.password): a.connection for a in accounts}
        self._static = {a.access_token: a.connection for a in accounts}
        self._lifetime = lifetime_s
        self._clock = clock
        self._revoked = revoked
        self._access: dict[str, tuple[str, float, int | None]] = {}  # token -> (connection, expires at, uses left)
        self._uses: int | None = None
        self._refresh: dict[str, tuple[str, str | None]] = {}  # token -> (connection, client_id)
        self._issued: list[str] = []  # every access and refresh token granted, expired or not
        self._lock = threading.Lock()

    def issued(self) -> list[str]:
        """Every access and refresh token granted so far: what a client may have held, for tests
        that look for it where it must not be."""
        with self._lock:
            return list(self._issued)

    def expire_all(self) -> None:
        """Every issued access token answers 401 from now on (refresh tokens stay valid)."""
        with self._lock:
            self._access.clear()

    def limit_uses(self, uses: int | None) -> None:
        """Access tokens issued from now on authenticate `uses` requests, then answer 401 as if
        expired (None: no limit). Every check of a token counts, whoever makes it."""
        if uses is not None and uses < 0:
            raise ValueError(f"uses must be >= 0, got {uses}")
        with self._lock:
            self._uses = uses

    def principal(self, authorization: str | None) -> str | None:
        """The connection a request authenticates as (bearer or HTTP Basic), or None."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if value in self._static:
                return self._static[value]
            with self._lock:
                connection, expires, left = self._access.get(value, (None, 0.0, None))
                if connection is None or self._clock() >= expires or left == 0:
                    return None
                if left is not None:
                    self._access[value] = (connection, expires, left - 1)
            return connection
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return self._logins.get((user, password))
        return None

    def token_endpoint(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error("unsupported_grant_type")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        client_id = headers.get("client_id")
        if grant == "password":
            connection = self._logins.get((form.get("username", ""), form.get("password", "")))
            if connection is None:
                return _oauth_error("invalid_grant", "The user name or password is incorrect.")
            if self._revoked(connection):
                return _oauth_error("invalid_grant", "The user account is disabled.")
            return self._issue(connection, client_id)
        if grant == "refresh_token":
            with self._lock:
                owner = self._refresh.pop(form.get("refresh_token", ""), None)
            if owner is None or self._revoked(owner[0]):
                return _oauth_error("invalid_grant", "The refresh token is invalid or has expired.")
            return self._issue(owner[0], client_id)
        return _oauth_error("unsupported_grant_type")

    def _issue(self, connection: str, client_id: str | None) -> Reply:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            if client_id is not None:
                # A new token invalidates older refresh tokens of the same client id, within
                # the account: one client app logged in to two accounts keeps both.
                self._refresh = {k: v for k, v in self._refresh.items() if v != (connection, client_id)}
            now = self._clock()
            self._access = {k: v for k, v in self._access.items() if v[1] > now}
            self._access[access] = (connection, now + self._lifetime, self._uses)
            self._refresh[refresh] = (connection, client_id)
            self._issued += [access, refresh]
        body = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self._lifetime),
            "refresh_token": refresh,
        }
        return json_reply(200, body, {"Cache-Control": "no-store"}, content_type=_JSON)
