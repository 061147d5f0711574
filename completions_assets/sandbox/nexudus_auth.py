"""Nexudus OAuth2 token endpoint (`POST /api/token`) and bearer/basic checks."""

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

from .reply import Reply, json_reply

TOKEN_PATH = "/api/token"
_JSON = "application/json;charset=UTF-8"


def _oauth_error(error: str, description: str | None = None) -> Reply:
    body = {"error": error} if description is None else {"error": error, "error_description": description}
    return json_reply(400, body, {"Cache-Control": "no-store"}, content_type=_JSON)


class TokenStore:
    """Issued access tokens (expiring) and refresh tokens (single use)."""

    def __init__(self, credentials: Mapping[str, str], lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._username = credentials["NEXUDUS_USERNAME"]
        self._password = credentials["NEXUDUS_PASSWORD"]
        self._static = credentials["NEXUDUS_ACCESS_TOKEN"]
        self._lifetime = lifetime_s
        self._clock = clock
        self._access: dict[str, tuple[str, float]] = {}  # token -> (user, expires at)
        self._refresh: dict[str, tuple[str, str | None]] = {}  # token -> (user, client_id)
        self._lock = threading.Lock()

    def expire_all(self) -> None:
        """Every issued access token answers 401 from now on (refresh tokens stay valid)."""
        with self._lock:
            self._access.clear()

    def principal(self, authorization: str | None) -> str | None:
        """Who a request authenticates as (bearer or HTTP Basic), or None."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if value and secrets.compare_digest(value, self._static):
                return self._username
            with self._lock:
                user, expires = self._access.get(value, (None, 0.0))
            return user if user is not None and self._clock() < expires else None
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return user if (user, password) == (self._username, self._password) else None
        return None

    def token_endpoint(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error("unsupported_grant_type")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        client_id = headers.get("client_id")
        if grant == "password":
            if (form.get("username"), form.get("password")) != (self._username, self._password):
                return _oauth_error("invalid_grant", "The user name or password is incorrect.")
            return self._issue(self._username, client_id)
        if grant == "refresh_token":
            with self._lock:
                owner = self._refresh.pop(form.get("refresh_token", ""), None)
            if owner is None:
                return _oauth_error("invalid_grant", "The refresh token is invalid or has expired.")
            return self._issue(owner[0], client_id)
        return _oauth_error("unsupported_grant_type")

    def _issue(self, user: str, client_id: str | None) -> Reply:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            if client_id is not None:
                # A new token invalidates older refresh tokens of the same client id.
                self._refresh = {k: v for k, v in self._refresh.items() if v[1] != client_id}
            now = self._clock()
            self._access = {k: v for k, v in self._access.items() if v[1] > now}
            self._access[access] = (user, now + self._lifetime)
            self._refresh[refresh] = (user, client_id)
        body = {"access_token": access, "token_type": "bearer", "expires_in": int(self._lifetime), "refresh_token": refresh}
        return json_reply(200, body, {"Cache-Control": "no-store"}, content_type=_JSON)
