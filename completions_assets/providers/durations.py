"""The one reading of ISO 8601 durations, used when a record is parsed and when it is merged.

`P[nY][nM][nW][nD][T[nH][nM][nS]]`, any component with a fraction (`PT1.5H`,
`P0.5D`). Weeks, days, hours, minutes and seconds have a fixed length; years
and months do not (a month is 28 to 31 days), so a duration using them has no
length in seconds: it is valid, and its seconds are null rather than guessed.
"""

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

_NUMBER = r"\d+(?:[.,]\d+)?"
ISO_DURATION = (
    rf"^P(?:(?P<years>{_NUMBER})Y)?(?:(?P<months>{_NUMBER})M)?(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?$"
)
FIXED_SECONDS = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
CALENDAR_UNITS = ("years", "months")


class DurationError(ValueError):
    """A value that is not an ISO 8601 duration; `index` is its row."""

    def __init__(self, index: int, value: str) -> None:
        super().__init__(f"is not an ISO 8601 duration: {value!r:.80}")
        self.index = index
        self.value = value


@dataclass(frozen=True)
class Durations:
    seconds: pa.Array  # int64, whole seconds (floored); null where absent or calendar-based
    calendar_rows: int  # rows using years or months, whose seconds are null


def parse_durations(text: pa.Array | pa.ChunkedArray) -> Durations:
    """Reads every value of `text` (nulls stay null).

    Raises:
        DurationError: naming the first value that is not an ISO 8601 duration.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    parts = pc.extract_regex(text, ISO_DURATION)
    # "P", "PT" and a trailing "T" match the pattern but name no component.
    empty = pc.or_(pc.is_in(text, pa.array(["P", "PT"])), pc.ends_with(text, "T"))
    invalid = pc.and_(pc.is_valid(text), pc.or_kleene(pc.is_null(parts), empty))
    if pc.any(invalid).as_py():
        index = pc.index(invalid, True).as_py()
        raise DurationError(index, text[index].as_py())
    total = pa.scalar(0.0)
    for unit, seconds in FIXED_SECONDS.items():
        total = pc.add(total, pc.multiply(_component(parts, unit), float(seconds)))
    calendar = pa.scalar(False)
    for unit in CALENDAR_UNITS:
        calendar = pc.or_(calendar, pc.not_equal(_component(parts, unit), 0.0))
    calendar = pc.fill_null(calendar, False)
    seconds = pc.if_else(calendar, pa.scalar(None, pa.int64()), pc.floor(total).cast(pa.int64()))
    return Durations(seconds=seconds, calendar_rows=pc.sum(calendar).as_py() or 0)


def _component(parts: pa.Array, unit: str) -> pa.Array:
    text = pc.struct_field(parts, unit)
    text = pc.replace_substring(text, ",", ".")
    return pc.if_else(pc.equal(text, ""), "0", text).cast(pa.float64())
