"""Nexudus list parameters: paging, ordering and the documented filters."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import Catalog
from .nexudus_data import NexudusRecord
from .timeutil import DAY_MS, MINUTE_MS, parse_minute_ms

PREFIX = "CourseCompletedLesson_"
DEFAULT_SIZE = 25
MAX_SIZE = 1000
_ASCENDING = {"1", "ascending", "asc"}
_DESCENDING = {"-1", "0", "descending", "desc"}  # 1 means ascending in every documented convention
_ID_FILTERS = {"CourseLesson": "lesson", "CourseMember": "member"}
_TEXT_FILTERS = (
    "CourseLesson_Title",
    "CourseMember_Coworker_FullName",
    "CourseMember_Coworker_CompanyName",
    "CourseMember_Coworker_TeamNames",
)
_TIME_FIELDS = {"CreatedOn": "event_ms", "UpdatedOn": "updated_ms"}


class QueryError(ValueError):
    """A parameter the API refuses (answered as 400, WasSuccessful false)."""


@dataclass(frozen=True)
class Options:
    page: int
    size: int
    order_field: str
    descending: bool
    filters: tuple[tuple[str, Any], ...]


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"The value '{raw}' is not valid for {name}.") from None
    if value < 1:
        raise QueryError(f"{name} must be greater than zero.")
    return value


def _order(params: Mapping[str, str], fields: Mapping[str, str]) -> tuple[str, bool]:
    order = params.get("orderBy") or "Id"
    field = fields.get(order.lower())
    if field is None:
        raise QueryError(f"Cannot order by '{order}'.")
    direction = (params.get("dir") or "1").strip().lower()
    if direction not in _ASCENDING | _DESCENDING:
        raise QueryError(f"The value '{params.get('dir')}' is not valid for dir.")
    return field, direction in _DESCENDING


def _time_filters(params: Mapping[str, str], tz: ZoneInfo) -> list[tuple[str, Any]]:
    found = []
    for name, attr in _TIME_FIELDS.items():
        lo, hi = -(2**62), 2**62
        exact = params.get(PREFIX + name)
        try:
            if exact:
                # An exact value matches its whole minute (or whole day for a bare date).
                lo = parse_minute_ms(exact, tz)
                hi = lo + (DAY_MS if len(exact.strip()) == 10 else MINUTE_MS)
            if params.get(f"from_{PREFIX}{name}"):
                lo = max(lo, parse_minute_ms(params[f"from_{PREFIX}{name}"], tz))
            if params.get(f"to_{PREFIX}{name}"):
                # Inclusive `to`: through the end of that minute.
                hi = min(hi, parse_minute_ms(params[f"to_{PREFIX}{name}"], tz) + MINUTE_MS)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        if (lo, hi) != (-(2**62), 2**62):
            found.append((attr, (lo, hi)))
    return found


def parse(params: Mapping[str, str], tz: ZoneInfo, order_fields: Mapping[str, str]) -> Options:
    """Raises QueryError for values the API refuses."""
    filters: list[tuple[str, Any]] = _time_filters(params, tz)
    for name, attr in _ID_FILTERS.items():
        if params.get(PREFIX + name):
            filters.append((attr, _int(params, PREFIX + name, 0)))
    for name in _TEXT_FILTERS:
        if params.get(PREFIX + name):
            filters.append((name, params[PREFIX + name].casefold()))
    field, descending = _order(params, order_fields)
    size = min(_int(params, "size", DEFAULT_SIZE), MAX_SIZE)
    return Options(_int(params, "page", 1), size, field, descending, tuple(sorted(filters)))


def matcher(filters: tuple[tuple[str, Any], ...], catalog: Catalog) -> Callable[[NexudusRecord], bool]:
    values = dict(filters)
    lesson_ids = [lesson_id for lesson_id, _ in catalog.lessons]
    member_ids = [m.id for m in catalog.members]

    def texts(rec: NexudusRecord) -> dict[str, str]:
        member = catalog.members[rec.member]
        return {
            "CourseLesson_Title": catalog.lessons[catalog.lesson_of(rec.lesson, rec.member)][1],
            "CourseMember_Coworker_FullName": member.person.full_name,
            "CourseMember_Coworker_CompanyName": member.company or "",
            "CourseMember_Coworker_TeamNames": member.teams or "",
        }

    def match(rec: NexudusRecord) -> bool:
        for attr in _TIME_FIELDS.values():
            if attr in values and not values[attr][0] <= getattr(rec, attr) < values[attr][1]:
                return False
        if "lesson" in values and lesson_ids[catalog.lesson_of(rec.lesson, rec.member)] != values["lesson"]:
            return False
        if "member" in values and member_ids[rec.member] != values["member"]:
            return False
        wanted = [name for name in _TEXT_FILTERS if name in values]
        if wanted:
            found = texts(rec)
            return all(values[name] in found[name].casefold() for name in wanted)
        return True

    return match
