"""The demo's "who completed what": named rows of each provider and one person's courses."""

import pyarrow as pa
import pytest

from completions_assets.local.names_report import who_completed_what

pytestmark = pytest.mark.unit


def test_it_names_rows_and_joins_one_persons_courses_by_person_id() -> None:
    rows = [
        ("bindbee", "acme", "u-1", "Ada Lovelace", "Fire Safety", "Part 1"),
        ("bindbee", "acme", "u-1", "Ada Lovelace", "Onboarding", "Intro"),
        ("bindbee", "acme", "u-1", "Ada Lovelace", "Onboarding", "Outro"),
        ("bindbee", "acme", "u-2", None, None, None),
        ("nexudus", "london", "61", "Zoë Ångström", "Onboarding", "Onboarding: lesson 1"),
        ("nexudus", "london", None, "José Núñez", None, "First Aid: lesson 2"),
    ]
    names = ["provider", "connection", "person_id", "user_name", "course_title", "content_title"]
    table = pa.table({name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(names)})
    text = who_completed_what(table, samples=2)
    assert "Ada Lovelace" in text and "Zoë Ångström" in text
    assert "one person_id, 2 courses: u-1 (Ada Lovelace, bindbee:acme)" in text
    assert "Onboarding: 2" in text and "Fire Safety: 1" in text
    assert "u-2" not in text  # an unnamed row is not a sample
