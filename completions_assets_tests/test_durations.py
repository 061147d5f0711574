"""The one ISO 8601 duration reader, shared by parsing and merging."""

import pyarrow as pa
import pytest

from completions_assets.providers.durations import DurationError, parse_durations

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H15M", 4500),
        ("PT45M", 2700),
        ("PT30S", 30),
        ("P1DT2H", 93600),
        ("PT1.9S", 1),
        ("P1W", 604800),
        ("PT0S", 0),
        (None, None),
        ("PT1.5H", 5400),
        ("P0.5D", 43200),
        ("PT0,5M", 30),
        ("P0M", 0),
    ],
)
def test_fixed_length_durations_become_whole_seconds(text, seconds):
    durations = parse_durations(pa.array([text], pa.string()))
    assert durations.seconds.to_pylist() == [seconds]
    assert durations.calendar_rows == 0


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P1Y2M3DT4H", "P0.5M"])
def test_calendar_durations_have_no_seconds_and_are_counted(text):
    durations = parse_durations(pa.array(["PT1M", text, None]))
    assert durations.seconds.to_pylist() == [60, None, None]
    assert durations.calendar_rows == 1


@pytest.mark.parametrize("text", ["1H", "PT1H15", "soon", "P", "PT", "P1DT", "PT1.H", "P-1D", "PT1H1H"])
def test_anything_else_is_refused_naming_the_row(text):
    with pytest.raises(DurationError, match=repr(text).replace("(", r"\(")) as caught:
        parse_durations(pa.array(["PT1M", text]))
    assert caught.value.index == 1
