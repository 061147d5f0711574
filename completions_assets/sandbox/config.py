"""Sandbox configuration: data shape, per-provider fault knobs, connections, credentials."""

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("bindbee", "nexudus")

# The product's variable names (docs/contract.md, "Settings"); these values are accepted when a variable is unset.
DEFAULT_CREDENTIALS: dict[str, str] = {
    "BINDBEE_API_KEY": "sandbox-bindbee-key",
    "BINDBEE_CONNECTOR_TOKEN": "sandbox-connector-token",
    "NEXUDUS_USERNAME": "sandbox@example.com",
    "NEXUDUS_PASSWORD": "sandbox-password",
    "NEXUDUS_ACCESS_TOKEN": "sandbox-nexudus-token",
}


def load_credentials(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Credentials the sandbox accepts: the environment's where set, else the defaults."""
    env = os.environ if environ is None else environ
    return {name: env.get(name) or default for name, default in DEFAULT_CREDENTIALS.items()}


DEFAULT_CONNECTION = "default"
CONNECTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # docs/contract.md, "Connections"
# Per provider: the variable names of the "default" connection, and for any other
# connection `c` its own names (suffix `_C`) and default values. BINDBEE_API_KEY is the
# organisation's key, shared by every connector token, so it never gets a suffix.
_OWN_CREDENTIALS: dict[str, dict[str, str]] = {
    "bindbee": {"BINDBEE_CONNECTOR_TOKEN": "sandbox-connector-token-{c}"},
    "nexudus": {
        "NEXUDUS_USERNAME": "sandbox-{c}@example.com",
        "NEXUDUS_PASSWORD": "sandbox-password-{c}",
        "NEXUDUS_ACCESS_TOKEN": "sandbox-nexudus-token-{c}",
    },
}
_SHARED_CREDENTIALS = {"bindbee": ("BINDBEE_API_KEY",), "nexudus": ()}


def connection_credentials(provider: str, connection: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variable name -> value the sandbox accepts for one connection (environment first).

    "default" keeps the product's variable names and defaults (docs/contract.md); another connection `c`
    reads `NAME_{C}` (C = c.upper()), defaulting to a value that names `c`.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {provider!r}")
    check_connection_name(connection)
    env = os.environ if environ is None else environ
    names = {name: DEFAULT_CREDENTIALS[name] for name in _SHARED_CREDENTIALS[provider]}
    for base, template in _OWN_CREDENTIALS[provider].items():
        default = DEFAULT_CREDENTIALS[base] if connection == DEFAULT_CONNECTION else template.format(c=connection)
        names[credential_name(base, connection)] = default
    return {name: env.get(name) or default for name, default in names.items()}


def credential_name(base: str, connection: str) -> str:
    """`BINDBEE_CONNECTOR_TOKEN` for "default", `BINDBEE_CONNECTOR_TOKEN_ACME` for "acme"."""
    if connection == DEFAULT_CONNECTION or base in _SHARED_CREDENTIALS["bindbee"]:
        return base
    return f"{base}_{connection.upper()}"


def check_connection_name(name: object) -> None:
    if not isinstance(name, str) or not CONNECTION_NAME.match(name):
        raise ValueError(f"connection names must match {CONNECTION_NAME.pattern}, got {name!r}")


def _default_connections() -> dict[str, tuple[str, ...]]:
    return {provider: (DEFAULT_CONNECTION,) for provider in PROVIDERS}


def normalize_connections(connections: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every provider with a non-empty tuple of unique, valid names (a missing provider: default)."""
    unknown = set(connections) - set(PROVIDERS)
    if unknown:
        raise ValueError(f"connections: unknown providers {sorted(unknown)}")
    out = _default_connections()
    for provider, names in connections.items():
        names = (names,) if isinstance(names, str) else tuple(names)
        for name in names:
            check_connection_name(name)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{provider} connections must be non-empty and unique, got {names}")
        out[provider] = names
    return out


# Schema drift modes of the `drift` knob (see drift.py).
DRIFT_MODES = ("unknown_fields", "omit_optional", "number_as_string", "bad_type")


def _check_k(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be >= 1 (requests are counted from 1), got {value}")


@dataclass(frozen=True)
class ProviderFaults:
    """Deterministic faults of one provider, counted over its data-endpoint requests.

    A status fault fires when `fail_status` is set and the request number is
    `fail_on` or a multiple of `fail_every`; with neither set, every request fails.
    """

    latency_ms: float = 0
    fail_status: int | None = None
    fail_on: int | None = None
    fail_every: int | None = None
    retry_after: str | None = "1"
    truncate_on: int | None = None
    html_on: int | None = None
    html_status: int = 200
    disconnect_on: int | None = None
    repeat_cursor: bool = False
    unsuccessful_on: int | None = None
    duplicate_on: int | None = None  # the page repeats its first record (a resync race)
    # With duplicate_on: the repeat carries a later modified_at/UpdatedOn, as when the
    # record is updated between two page reads; off keeps the repeat an exact copy.
    duplicate_newer: bool = False
    drift: str | None = None  # every data page strays from the documented record shape (DRIFT_MODES)
    # With fail_status: the error body quotes, in plain text, the credentials the client holds
    # (faults.status_reply), as a provider that echoes a token back in its error message does.
    echo_credentials: bool = False
    # A connector whose sync failed: of these days (UTC dates) it serves only the records not withheld,
    # `withhold_share` of each day's records by a stable hash of their ids (1: the days come back empty).
    # The records stay in the ground truth: the provider's answer is wrong, not the data.
    withhold_days: tuple[str, ...] = ()
    withhold_share: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "withhold_days", tuple(self.withhold_days))
        for day in self.withhold_days:
            dt.date.fromisoformat(day)  # ValueError names a malformed day
        if not 0 <= self.withhold_share <= 1:
            raise ValueError("withhold_share must be within [0, 1]")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.fail_status is not None and not 400 <= self.fail_status <= 599:
            raise ValueError(f"fail_status must be a 4xx/5xx status, got {self.fail_status}")
        for name in (
            "fail_on",
            "fail_every",
            "truncate_on",
            "html_on",
            "disconnect_on",
            "unsuccessful_on",
            "duplicate_on",
        ):
            _check_k(name, getattr(self, name))
        if self.drift is not None and self.drift not in DRIFT_MODES:
            raise ValueError(f"drift must be one of {DRIFT_MODES}, got {self.drift!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ProviderFaults":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault knobs: {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox serves. `now=None` uses the real clock for visibility."""

    seed: int = 7
    start_date: dt.date = dt.date(2024, 1, 1)
    days: int = 60
    records_per_day: int = 200
    rate_limits: bool = False
    nexudus_filter_tz: str = "UTC"
    nexudus_naive_timestamps: bool = False
    token_lifetime_s: float = 3600
    now: dt.datetime | None = None
    bindbee: ProviderFaults = field(default_factory=ProviderFaults)
    nexudus: ProviderFaults = field(default_factory=ProviderFaults)
    # Share of records that become visible 1..3 days after their event time.
    late_fraction: float = 0.03
    # Connections served per provider, each with its own data, credentials and rate budget.
    # Left out of the hash (a dict is unhashable) so the config stays hashable as before.
    connections: Mapping[str, tuple[str, ...]] = field(default_factory=_default_connections, hash=False)
    # Bindbee connections whose LMS ignores `expand`: their relations come back as ids only.
    bindbee_ignore_expand: tuple[str, ...] = ()
    # One Nexudus enrolment (catalog.MEMBER_REMOVED) leaves its course at the end of the first day
    # it completed a lesson on: no longer listed, its earlier completions stay.
    nexudus_member_removed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "connections", normalize_connections(self.connections))
        unknown = set(self.bindbee_ignore_expand) - set(self.connections["bindbee"])
        if unknown:
            raise ValueError(f"bindbee_ignore_expand: unknown bindbee connections {sorted(unknown)}")
        if self.days < 0 or self.records_per_day < 0:
            raise ValueError("days and records_per_day must be >= 0")
        if not 0 <= self.late_fraction <= 1:
            raise ValueError("late_fraction must be within [0, 1]")

    def faults(self, provider: str) -> ProviderFaults:
        return getattr(self, provider)

    @property
    def many_connections(self) -> bool:
        """False for the default-only setup, whose stats keep today's shape."""
        return self.connections != _default_connections()
