"""Millisecond epoch times, their wire formats, and filter-value parsing."""

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DAY_MS = 86_400_000
MINUTE_MS = 60_000

# fromisoformat silently drops digits past microseconds; the API rejects them.
_TOO_PRECISE = re.compile(r"[.,]\d{7,}")
_MINUTE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")


def to_us(value: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def ceil_ms(us: int) -> int:
    return -(-us // 1000)


def from_ms(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)


def date_start_ms(day: dt.date) -> int:
    return (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * DAY_MS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_DAY_PREFIX: dict[int, str] = {}


def iso_z(ms: int) -> str:
    """`2025-08-01T11:15:00Z`, with `.123` when the milliseconds are not zero."""
    # Hand-rolled (with a per-day prefix cache): this runs for every served timestamp.
    day, rest = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = _DAY_PREFIX[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
    seconds, frac = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if frac:
        return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{frac:03d}Z"
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def iso_local(ms: int, tz: ZoneInfo) -> str:
    """Wall-clock time in `tz` without an offset (Nexudus naive-timestamp knob)."""
    local = from_ms(ms).astimezone(tz)
    base = local.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ms % 1000
    return f"{base}.{frac:03d}" if frac else base


def iso_duration(seconds: int) -> str:
    """ISO 8601 duration such as PT1H15M, PT45M, PT30S or P1DT2H."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    out = "P" + (f"{days}D" if days else "")
    if time_part or not days:
        out += "T" + (time_part or "0S")
    return out


def parse_iso(value: str) -> dt.datetime:
    """ISO 8601 date or datetime (fraction up to microseconds), aware in UTC.

    Raises:
        ValueError: not ISO 8601, or more precise than microseconds.
    """
    if _TOO_PRECISE.search(value):
        raise ValueError("fractional seconds beyond microseconds")
    parsed = dt.datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_minute_ms(value: str, tz: ZoneInfo) -> int:
    """Start (epoch ms) of the minute `YYYY-MM-DDTHH:mm` read as wall time in `tz`.

    Seconds, if sent, are dropped: the filter has minute resolution.
    A bare date means its first minute.

    Raises:
        ValueError: any other format.
    """
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00"
    match = _MINUTE.match(text)
    if not match:
        raise ValueError(f"expected YYYY-MM-DDTHH:mm, got {value!r}")
    year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
    local = dt.datetime(year, month, day, hour, minute, tzinfo=tz)
    return to_us(local) // 1000
