"""Non-secret settings read from the environment when the code location loads.

Partitions and the schedule need these before any run starts; secrets are never
read here (they reach resources only as `dagster.EnvVar`). `ConfigurationError`
is the one error of every bad setting, here or in a provider resource.
"""

import datetime as dt
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fsspec
import httpx

LOOPBACK_NAMES = frozenset({"localhost"})


class ConfigurationError(ValueError):
    """A setting is missing or malformed, refused before any request; the message names it."""


@dataclass(frozen=True)
class Settings:
    start_date: dt.date
    timezone: str
    lookback_days: int
    data_root: str
    freshness_hour: int | None = 6  # a day is overdue this many hours after it closes; None: no freshness checks
    names_resolved_min: float = 0.99  # share of a connection's rows with a person's and a course's name
    audit_days: int = 90  # days the audit compares with the providers
    max_removed_share: float = 0.2  # share of a stored day's rows a re-fetch may remove without an override

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


DEFAULTS = {
    "COMPLETIONS_START_DATE": "2024-01-01",
    "COMPLETIONS_TIMEZONE": "UTC",
    "COMPLETIONS_LOOKBACK_DAYS": "3",
    "COMPLETIONS_DATA_ROOT": "./data",
    "COMPLETIONS_FRESHNESS_HOUR": "6",
    "COMPLETIONS_NAMES_RESOLVED_MIN": "0.99",
    "COMPLETIONS_AUDIT_DAYS": "90",
    "COMPLETIONS_MAX_REMOVED_SHARE": "0.2",
}


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read and validate the COMPLETIONS_* variables, falling back to DEFAULTS."""
    value = {name: environ.get(name) or default for name, default in DEFAULTS.items()}
    timezone = _timezone(value["COMPLETIONS_TIMEZONE"])
    return Settings(
        start_date=_start_date(value["COMPLETIONS_START_DATE"], ZoneInfo(timezone)),
        timezone=timezone,
        lookback_days=_lookback(value["COMPLETIONS_LOOKBACK_DAYS"]),
        data_root=_data_root(value["COMPLETIONS_DATA_ROOT"]),
        freshness_hour=_freshness_hour(value["COMPLETIONS_FRESHNESS_HOUR"]),
        names_resolved_min=_share("COMPLETIONS_NAMES_RESOLVED_MIN", value),
        audit_days=_audit_days(value["COMPLETIONS_AUDIT_DAYS"]),
        max_removed_share=_share("COMPLETIONS_MAX_REMOVED_SHARE", value),
    )


def _share(name: str, value: Mapping[str, str]) -> float:
    raw = value[name]
    try:
        share = float(raw)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise ConfigurationError(f"{name}={raw!r} is not a share between 0 and 1 (e.g. {DEFAULTS[name]})")
    return share


def _audit_days(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"COMPLETIONS_AUDIT_DAYS={raw!r} is not a whole number of days >= 1")
    return int(raw)


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"COMPLETIONS_TIMEZONE={raw!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from None
    return raw


def _start_date(raw: str, zone: ZoneInfo) -> dt.date:
    try:
        start = dt.date.fromisoformat(raw)
    except ValueError:
        raise ConfigurationError(f"COMPLETIONS_START_DATE={raw!r} is not a date (YYYY-MM-DD)") from None
    today = dt.datetime.now(zone).date()
    if start >= today:
        raise ConfigurationError(f"COMPLETIONS_START_DATE={raw} is not in the past: only complete days are partitions")
    return start


def _lookback(raw: str) -> int:
    if not raw.isdigit():
        raise ConfigurationError(f"COMPLETIONS_LOOKBACK_DAYS={raw!r} is not a whole number of days >= 0")
    return int(raw)


def _freshness_hour(raw: str) -> int | None:
    if raw == "off":
        return None
    if not raw.isdigit() or not 0 <= int(raw) <= 23:
        raise ConfigurationError(f"COMPLETIONS_FRESHNESS_HOUR={raw!r} is not an hour of the day (0-23) or 'off'")
    return int(raw)


def _data_root(raw: str) -> str:
    protocol, separator, rest = raw.partition("://")
    if not separator:
        return raw  # a local path
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError(f"COMPLETIONS_DATA_ROOT={raw!r}: unsupported storage ({exc})") from None
    if not rest.strip("/"):
        raise ConfigurationError(f"COMPLETIONS_DATA_ROOT={raw!r} names no bucket or path")
    return raw.rstrip("/")


def check_base_url(base_url: str, *, name: str) -> httpx.URL:
    """`base_url` parsed; anything but https (or http to loopback) is refused before a token is sent.

    Raises:
        ConfigurationError: naming `name` (the provider or the variable).
    """
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"{name}: invalid base URL: {exc}") from None
    if url.userinfo:
        raise ConfigurationError(f"{name}: base URL must not carry credentials")
    if not url.host:
        raise ConfigurationError(f"{name}: base URL has no host: {url.scheme}://…")
    if url.scheme == "https" or (url.scheme == "http" and is_loopback(url.host)):
        return url
    raise ConfigurationError(
        f"{name}: base URL must be https:// (plain http only on loopback), got {url.scheme}://{url.host}"
    )


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
