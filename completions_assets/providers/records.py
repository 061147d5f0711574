"""Vectorised conversion of provider records into typed Arrow columns.

Columns are built once per batch of pages from plain lists (`pa.array` with the target
type) and timestamps are parsed by Arrow's cast; only when a column fails does
a slow path look for the first offending record, to name its page and field.
"""

import bisect
import itertools
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.http.errors import PayloadError
from completions_assets.http.pagination import Page
from completions_assets.http.redaction import Label
from completions_assets.providers.durations import DurationError, parse_durations
from completions_assets.providers.spill import WindowRows

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")  # every timestamp column of every file
_NAIVE_TIMESTAMP = pa.timestamp("us")
_HAS_OFFSET = r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
_EXTRA_FRACTION = r"(\.\d{6})\d+"
# A number sent as a JSON string is read only in plain decimal notation ("95", "-3.5"):
# no exponent, sign, padding, separators or leading zeros that could change its meaning.
_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9]\d*)")
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
PARSE_BATCH_RECORDS = 500
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError)


class RecordLocator:
    """Maps a record's position in a batch of pages back to its page, for error messages."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._starts: list[int] = []
        self._labels: list[Label] = []
        self.count = 0

    def add_page(self, label: Label, size: int) -> None:
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


def column(
    values: Sequence[Any],
    type_: pa.DataType,
    field: str,
    locator: RecordLocator,
    *,
    required: bool = False,
    expected: str | None = None,
) -> pa.Array:
    """`values` as an Arrow array of `type_`; raises naming the first bad record.

    Numeric columns take a value only when reading it cannot change it: a number
    sent as a string is read in plain decimal notation, while a fraction for an
    integer, a boolean or any other text is refused.
    """
    numeric = pa.types.is_integer(type_) or pa.types.is_floating(type_)
    try:
        array = _numbers(values, type_) if numeric else pa.array(values, type=type_)
    except _CONVERSION_ERRORS:
        array = _value_by_value(values, type_, field, locator, expected or str(type_), numeric=numeric)
    if required:
        require(array, field, locator)
    return array


def _numbers(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    # Arrow converts 95.5 to an int64 95 and True to a double 1.0 without a word;
    # inferring first and casting safely refuses both.
    inferred = pa.array(values)
    if not (
        pa.types.is_integer(inferred.type) or pa.types.is_floating(inferred.type) or pa.types.is_null(inferred.type)
    ):
        raise TypeError(f"not numbers: {inferred.type}")
    return inferred.cast(type_, safe=True)


def _value_by_value(
    values: Sequence[Any], type_: pa.DataType, field: str, locator: RecordLocator, expected: str, *, numeric: bool
) -> pa.Array:
    original = values
    if numeric:
        read = []
        for index, value in enumerate(values):
            try:
                read.append(_number(value, integer=pa.types.is_integer(type_)))
            except ValueError:
                raise locator.error(index, field, f"is not {expected}: {value!r:.80}") from None
        try:
            return pa.array(read, type=type_)
        except _CONVERSION_ERRORS:
            values = read  # out of range: named below
    for index, value in enumerate(values):
        try:
            pa.array([value], type=type_)
        except _CONVERSION_ERRORS:
            raise locator.error(index, field, f"is not {expected}: {original[index]!r:.80}") from None
    raise AssertionError(f"{field}: the column failed to convert but no single value did")


def _number(value: Any, *, integer: bool) -> int | float | None:
    """`value` as a number of the column's kind, if reading it cannot change it."""
    if value is None or type(value) is int:  # `type`, not isinstance: a bool is no number here
        return value
    if type(value) is float and (value.is_integer() or not integer):
        return value
    if type(value) is str and (_INTEGER_TEXT if integer else _DECIMAL_TEXT).fullmatch(value):
        return int(value) if integer else float(value)
    raise ValueError(f"cannot be read safely as a number: {value!r:.80}")


def require(array: pa.Array, field: str, locator: RecordLocator) -> None:
    if array.null_count:
        first = pc.index(pc.is_null(array), True).as_py()
        raise locator.error(first, field, "is missing or null")


def timestamps(
    values: Sequence[Any], field: str, locator: RecordLocator, *, naive_tz: str, required: bool = False
) -> pa.Array:
    """ISO 8601 strings to timestamp[us, UTC]; strings without an offset are read in `naive_tz`."""
    text = column(values, pa.string(), field, locator, required=required, expected="an ISO 8601 timestamp")
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
    """ISO 8601 durations, kept as text once `parse_durations` has read every one."""
    text = column(values, pa.string(), field, locator)
    try:
        parse_durations(text)
    except DurationError as exc:
        raise locator.error(exc.index, field, str(exc)) from None
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


def unknown_fields(records: Sequence[dict[str, Any]], known: Collection[str]) -> set[str]:
    """Field names of `records` that are not in `known` (a provider added fields)."""
    return set(dict.fromkeys(itertools.chain.from_iterable(records))).difference(known)


def parse_batches(
    pages: Iterable[Page],
    parse: Callable[[list[dict[str, Any]], RecordLocator], pa.Table],
    provider: str,
    *,
    batch_records: int = PARSE_BATCH_RECORDS,
) -> Iterator[pa.Table]:
    """Every record of a walk, parsed into Arrow a batch of pages at a time as they arrive (at
    least one table, empty for an empty walk).

    The decoded dicts of a whole walk would take about ten times the memory of
    their Arrow form; batches of a few hundred records keep the per-call cost
    of Arrow low, and parsing overlaps the requests of the other walks.
    """
    records: list[dict[str, Any]] = []
    locator = RecordLocator(provider)
    parsed = False
    for page in pages:
        locator.add_page(page.label, len(page.records))
        records.extend(page.records)
        if len(records) >= batch_records:
            yield parse(records, locator)
            parsed = True
            records, locator = [], RecordLocator(provider)
    if records or not parsed:
        yield parse(records, locator)


def parse_walk(
    pages: Iterable[Page],
    parse: Callable[[list[dict[str, Any]], RecordLocator], pa.Table],
    provider: str,
    rows: WindowRows,
) -> pa.Table:
    """Every record of a window's walk, parsed a batch at a time and written to `rows`; returns what
    was served (see WindowRows.add)."""
    served = [rows.add(batch) for batch in parse_batches(pages, parse, provider)]
    return pa.concat_tables(served) if len(served) > 1 else served[0]
