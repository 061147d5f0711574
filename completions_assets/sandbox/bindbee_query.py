"""Bindbee query parameters: FastAPI-style validation and record matching."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .bindbee_data import EXPAND_FIELDS, GRADES, BindbeeRecord
from .catalog import Catalog
from .timeutil import ceil_ms, parse_iso, to_us

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_EXPAND_ITEM = re.compile(r"([a-z_]+)(?:\[([a-z_,]*)\])?")
_EXPAND_LIST = re.compile(r"[^,\[]+(?:\[[^\]]*\])?")
RANGES = ("completed_at_from", "completed_at_to", "started_at_from", "started_at_to")
LISTS = ("ids", "user", "course", "content")


@dataclass(frozen=True)
class Options:
    page_size: int
    cursor: str | None
    variant: tuple[bool, bool, tuple[tuple[str, tuple[str, ...] | None], ...]]  # raw, custom, expand
    filters: tuple[tuple[str, Any], ...]  # hashable: the cache key of the matching ids


def _error(name: str, msg: str, kind: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ["query", name], "msg": msg, "input": value}


def _page_size(raw: str | None, errors: list[dict[str, Any]]) -> int:
    if raw is None:
        return 50
    try:
        size = int(raw)
    except ValueError:
        msg = "Input should be a valid integer, unable to parse string as an integer"
        errors.append(_error("page_size", msg, "int_parsing", raw))
        return 0
    if size < 1:
        errors.append(_error("page_size", "Input should be greater than or equal to 1", "greater_than_equal", raw))
    elif size > 100:
        errors.append(_error("page_size", "Input should be less than or equal to 100", "less_than_equal", raw))
    return size


def _flag(params: Mapping[str, str], name: str, errors: list[dict[str, Any]]) -> bool:
    raw = params.get(name)
    if raw is None or raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    errors.append(_error(name, "Input should be a valid boolean, unable to interpret input", "bool_parsing", raw))
    return False


def _expand(raw: str | None, errors: list[dict[str, Any]]) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    """`user[first_name,email_address],course` -> (("course", None), ("user", ("first_name", ...)))."""
    if not raw:
        return ()
    items = _EXPAND_LIST.findall(raw)  # commas inside [...] belong to a field list
    out: dict[str, tuple[str, ...] | None] = {}
    for item in items:
        match = _EXPAND_ITEM.fullmatch(item)
        relation = match.group(1) if match else item
        fields = tuple(f for f in (match.group(2) or "").split(",") if f) if match else ()
        allowed = EXPAND_FIELDS.get(relation, ()) + ("id",)
        if not match or relation not in EXPAND_FIELDS or any(f not in allowed for f in fields):
            break
        out[relation] = None if match.group(2) is None else tuple(f for f in fields if f != "id")
    else:
        if ",".join(items) == raw:
            return tuple(sorted(out.items()))
    msg = f"Invalid expand value {raw!r}: relations are user, course, content, with documented fields"
    errors.append(_error("expand", msg, "value_error", raw))
    return ()


def _filters(params: Mapping[str, str], errors: list[dict[str, Any]]) -> tuple[tuple[str, Any], ...]:
    found: list[tuple[str, Any]] = []
    for name in RANGES:
        if params.get(name):
            try:
                found.append((name, to_us(parse_iso(params[name]))))
            except ValueError:
                msg = "Input should be a valid datetime or date, invalid character in year"
                errors.append(_error(name, msg, "datetime_from_date_parsing", params[name]))
    for name in LISTS:
        if params.get(name):
            found.append((name, frozenset(v.strip() for v in params[name].split(",") if v.strip())))
    grade = params.get("grade")
    if grade is not None:
        if grade not in GRADES:
            errors.append(
                _error("grade", "Input should be 'A', 'B', 'C', 'D', 'F', 'PASS', 'FAIL' or '-'", "enum", grade)
            )
        found.append(("grade", grade))
    if params.get("remote_id"):
        found.append(("remote_id", params["remote_id"]))
    return tuple(sorted(found, key=lambda item: item[0]))


def parse(params: Mapping[str, str]) -> tuple[Options, list[dict[str, Any]]]:
    """Options of a request, and FastAPI-style 422 error entries (empty when valid)."""
    errors: list[dict[str, Any]] = []
    size = _page_size(params.get("page_size"), errors)
    variant = (
        _flag(params, "include_raw_data", errors),
        _flag(params, "include_custom_fields", errors),
        _expand(params.get("expand"), errors),
    )
    options = Options(size, params.get("cursor") or None, variant, _filters(params, errors))
    return options, errors


def completed_bounds(filters: tuple[tuple[str, Any], ...]) -> tuple[int, int] | None:
    """[lo, hi) in epoch ms for the inclusive completed_at range, if any bound is set."""
    values = dict(filters)
    if "completed_at_from" not in values and "completed_at_to" not in values:
        return None
    lo = ceil_ms(values["completed_at_from"]) if "completed_at_from" in values else -(2**62)
    hi = values["completed_at_to"] // 1000 + 1 if "completed_at_to" in values else 2**62
    return lo, hi


def matcher(filters: tuple[tuple[str, Any], ...], catalog: Catalog) -> Any:
    """Predicate over (record) for every filter except the completed_at range."""
    values = dict(filters)
    refs = {"user": catalog.user_ids, "course": catalog.course_ids, "content": catalog.content_ids}
    wanted = {
        name: {i for i, ident in enumerate(refs[name]) if ident in values[name]} for name in refs if name in values
    }
    ids = values.get("ids")
    s_lo = ceil_ms(values["started_at_from"]) if "started_at_from" in values else None
    s_hi = values["started_at_to"] // 1000 if "started_at_to" in values else None

    def match(rec: BindbeeRecord) -> bool:
        if ids is not None and rec.id not in ids:
            return False
        if any(getattr(rec, name) not in allowed for name, allowed in wanted.items()):
            return False
        if "grade" in values and rec.grade != values["grade"]:
            return False
        if "remote_id" in values and rec.remote_id != values["remote_id"]:
            return False
        if s_lo is not None or s_hi is not None:
            if rec.started_ms is None:
                return False
            if (s_lo is not None and rec.started_ms < s_lo) or (s_hi is not None and rec.started_ms > s_hi):
                return False
        return True

    return match
