"""Many connections per provider: whose credentials a request carries, and revocation.

A Bindbee connection is one connector token under the organisation's one API key;
a Nexudus connection is one account (username/password, static access token).
"""

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import PROVIDERS, SandboxConfig, connection_credentials, credential_name


@dataclass(frozen=True)
class Account:
    """One Nexudus account the token endpoint and bearer/basic checks know."""

    connection: str
    username: str
    password: str
    access_token: str  # static, always accepted (unless revoked)


class Credentials:
    """Every configured connection's credentials, read once from the environment."""

    def __init__(self, config: SandboxConfig, environ: Mapping[str, str] | None = None) -> None:
        self.by_connection = {
            (p, c): connection_credentials(p, c, environ) for p, names in config.connections.items() for c in names
        }
        self.api_key = connection_credentials("bindbee", "default", environ)["BINDBEE_API_KEY"]
        self.connectors = _unique(
            "bindbee",
            "connector token",
            ((self._value("bindbee", c, "BINDBEE_CONNECTOR_TOKEN"), c) for c in config.connections["bindbee"]),
        )
        self.accounts = [
            Account(
                c,
                *(
                    self._value("nexudus", c, base)
                    for base in ("NEXUDUS_USERNAME", "NEXUDUS_PASSWORD", "NEXUDUS_ACCESS_TOKEN")
                ),
            )
            for c in config.connections["nexudus"]
        ]
        # A username or token shared by two accounts would make routing a guess: refuse it.
        _unique("nexudus", "username", ((a.username, a.connection) for a in self.accounts))
        _unique("nexudus", "access token", ((a.access_token, a.connection) for a in self.accounts))

    def _value(self, provider: str, connection: str, base: str) -> str:
        return self.by_connection[(provider, connection)][credential_name(base, connection)]

    def of(self, provider: str, connection: str) -> dict[str, str]:
        found = self.by_connection.get((provider, connection))
        if found is None:
            raise ValueError(f"no {provider} connection {connection!r}")
        return dict(found)


def _unique(provider: str, what: str, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for value, connection in pairs:
        if value in seen:
            raise ValueError(f"{provider} connections {seen[value]!r} and {connection!r} share a {what}")
        seen[value] = connection
    return seen


class Revocations:
    """The revoke knobs: connections whose credentials are refused, now or after N data requests."""

    def __init__(self, connections: Mapping[str, tuple[str, ...]]) -> None:
        self._connections = connections
        self._revoked: dict[str, frozenset[str]] = {p: frozenset() for p in PROVIDERS}
        self._after: dict[str, dict[str, int]] = {p: {} for p in PROVIDERS}
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def revoke(self, revoke: Mapping[str, Iterable[str]]) -> None:
        """Replaces each named provider's revoked set (an empty list un-revokes all)."""
        checked = {p: frozenset(self._check(p, names)) for p, names in revoke.items()}
        with self._lock:
            self._revoked.update(checked)

    def revoke_after(self, revoke_after: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces each named provider's thresholds: {name: N} refuses that connection from
        its (N+1)-th data request counted from now on."""
        checked: dict[str, dict[str, int]] = {}
        for provider, limits in revoke_after.items():
            if not isinstance(limits, Mapping):
                raise ValueError(f"revoke_after: expected {{connection: N}} for {provider}, got {limits!r}")
            self._check(provider, limits)
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in limits.values()):
                raise ValueError(f"revoke_after counts must be integers >= 0, got {dict(limits)}")
            checked[provider] = dict(limits)
        with self._lock:
            for provider, limits in checked.items():
                self._after[provider] = limits
                for name in limits:
                    self._counts[(provider, name)] = 0

    def admit(self, provider: str, connection: str) -> bool:
        """Counts one data request of `connection`; False when its credentials are refused."""
        with self._lock:
            count = self._counts[(provider, connection)] = self._counts.get((provider, connection), 0) + 1
            return not self._refused(provider, connection, count)

    def is_revoked(self, provider: str, connection: str) -> bool:
        """Refused now, without counting a request (token grants ask this)."""
        with self._lock:
            return self._refused(provider, connection, self._counts.get((provider, connection), 0))

    def _refused(self, provider: str, connection: str, count: int) -> bool:
        limit = self._after[provider].get(connection)
        return connection in self._revoked[provider] or (limit is not None and count > limit)

    def _check(self, provider: str, names: Iterable[str]) -> Iterable[str]:
        if provider not in PROVIDERS:
            raise ValueError(f"revoke: provider must be one of {PROVIDERS}, got {provider!r}")
        if isinstance(names, str):
            raise ValueError(f"revoke: expected a list of {provider} connections, got {names!r}")
        unknown = [n for n in names if n not in self._connections[provider]]
        if unknown:
            raise ValueError(f"revoke: unknown {provider} connections {unknown}")
        return names
