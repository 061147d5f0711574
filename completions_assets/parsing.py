"""Vectorised conversion of provider records into typed Arrow columns.

Columns are built once per sweep from plain lists (`pa.array` with the target
type) and timestamps are parsed by Arrow's cast; only when a column fails does
a slow path look for the first offending record, to name its page and field.
"""

import bisect
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.errors import PayloadError
from completions_assets.schemas import UTC_TIMESTAMP

_NAIVE_TIMESTAMP = pa.timestamp("us")
_HAS_OFFSET = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
_EXTRA_FRACTION = r"(\.\d{6})\d+"
# ISO 8601 duration; the empty forms "P" and "PT" are rejected separately.
_DURATION = r"^P(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?(?:T(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$"


class RecordLocator:
    """Maps a record's position in a sweep back to its page, for error messages."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._starts: list[int] = []
        self._labels: list[str] = []
        self.count = 0

    def add_page(self, label: str, size: int) -> None:
        self._starts.append(self.count)
        self._labels.append(label)
        self.count += size

    def where(self, index: int) -> str:
        page = bisect.bisect_right(self._starts, index) - 1
        if page < 0:
            return f"record {index}"
        return f"{self._labels[page]}, record {index - self._starts[page]}"

    def error(self, index: int, field: str, problem: str) -> PayloadError:
        return PayloadError(self.provider, f"{self.where(index)}: field {field!r} {problem}")


def column(values: Sequence[Any], type_: pa.DataType, field: str, locator: RecordLocator, *, required: bool = False) -> pa.Array:
    """`values` as an Arrow array of `type_`; raises naming the first bad record."""
    try:
        array = pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        for index, value in enumerate(values):
            try:
                pa.array([value], type=type_)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
                raise locator.error(index, field, f"is not {type_}: {value!r:.80}") from None
        raise
    if required:
        require(array, field, locator)
    return array


def require(array: pa.Array, field: str, locator: RecordLocator) -> None:
    if array.null_count:
        first = pc.index(pc.is_null(array), True).as_py()
        raise locator.error(first, field, "is missing or null")


def timestamps(values: Sequence[Any], field: str, locator: RecordLocator, *, naive_tz: str, required: bool = False) -> pa.Array:
    """ISO 8601 strings to timestamp[us, UTC]; strings without an offset are read in `naive_tz`."""
    text = column(values, pa.string(), field, locator, required=required)
    try:
        return text.cast(UTC_TIMESTAMP)
    except pa.ArrowInvalid:
        pass  # naive or over-precise values: take the slower general path
    try:
        return _mixed_timestamps(text, naive_tz)
    except (pa.ArrowInvalid, ValueError):
        for index, value in enumerate(text.to_pylist()):
            try:
                _mixed_timestamps(pa.array([value], pa.string()), naive_tz)
            except (pa.ArrowInvalid, ValueError):
                raise locator.error(index, field, f"is not an ISO 8601 timestamp: {value!r:.80}") from None
        raise


def _mixed_timestamps(text: pa.Array, naive_tz: str) -> pa.Array:
    # Sub-microsecond digits (.NET writes 7) carry nothing the schema can keep.
    text = pc.replace_substring_regex(text, _EXTRA_FRACTION, r"\1")
    has_offset = pc.match_substring_regex(text, _HAS_OFFSET)
    aware = pc.if_else(has_offset, text, pa.scalar(None, pa.string())).cast(UTC_TIMESTAMP)
    local = pc.if_else(has_offset, pa.scalar(None, pa.string()), text).cast(_NAIVE_TIMESTAMP)
    localised = pc.assume_timezone(local, naive_tz, ambiguous="earliest", nonexistent="raise")
    return pc.coalesce(aware, localised.cast(UTC_TIMESTAMP))


def durations(values: Sequence[Any], field: str, locator: RecordLocator) -> pa.Array:
    """ISO 8601 durations, kept as text after checking their form."""
    text = column(values, pa.string(), field, locator)
    valid = pc.and_kleene(pc.match_substring_regex(text, _DURATION), pc.invert(pc.is_in(text, pa.array(["P", "PT"]))))
    valid = pc.and_kleene(valid, pc.invert(pc.ends_with(text, "T")))
    bad = pc.invert(pc.fill_null(valid, True))
    if pc.any(bad).as_py():
        index = pc.index(bad, True).as_py()
        raise locator.error(index, field, f"is not an ISO 8601 duration: {text[index].as_py()!r:.80}")
    return text


def reference_ids(values: Sequence[Any], field: str, locator: RecordLocator) -> pa.Array:
    """Relation ids; an expanded relation (an object) contributes its "id"."""
    ids = [value.get("id") if isinstance(value, dict) else value for value in values]
    return column(ids, pa.string(), field, locator)


def json_text(values: Sequence[Any], *, enabled: bool = True) -> pa.Array:
    """JSON text of each value (keys sorted, so equal data gives equal text); null if absent or disabled."""
    if not enabled:
        return pa.nulls(len(values), pa.string())
    return pa.array(
        [None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False) for value in values],
        type=pa.string(),
    )
