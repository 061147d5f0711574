"""Checks a provider declares on its own asset, evaluated on each day as it is fetched.

They need facts only the fetch has (the `TotalItems` each request reported), so
they run inside the provider's step. An outcome is plain data; the Dagster
definitions turn it into one check evaluation per day.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.providers.ranges import DayBatch

EXAMPLES = 5  # example ids shown by a failed check


@dataclass(frozen=True)
class CheckOutcome:
    """Whether a check held, how many rows broke it, and a few of their ids."""

    failed_rows: int
    examples: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.failed_rows == 0

    def metadata(self) -> dict[str, Any]:
        return {"failed_rows": self.failed_rows, "example_ids": list(self.examples), **self.details}


@dataclass(frozen=True)
class ProviderCheck:
    name: str  # reads as an assertion
    description: str
    evaluate: Callable[[DayBatch, str], CheckOutcome]  # (day, the provider's id column)


def duplicated_keys(table: pa.Table, keys: list[str]) -> CheckOutcome:
    """Rows whose `keys` occur more than once (every copy counts)."""
    counts = table.group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    failed = pc.sum(repeated["count_all"]).as_py() or 0
    rows = repeated.slice(0, EXAMPLES).select(keys).to_pylist()
    examples = tuple(":".join(str(row[key]) for key in keys) for row in rows)
    return CheckOutcome(failed_rows=failed, examples=examples)


def _no_duplicate_ids(batch: DayBatch, id_column: str) -> CheckOutcome:
    return duplicated_keys(batch.table, [id_column])


def _matches_reported_total(batch: DayBatch, id_column: str) -> CheckOutcome:
    windows = batch.stats.windows
    mismatched = [w for w in windows if w.total_items != w.distinct_fetched]
    return CheckOutcome(
        failed_rows=sum(abs((w.total_items or 0) - w.distinct_fetched) for w in mismatched),
        details={
            "request_windows": len(windows),
            "mismatched_windows": [
                f"{w.request_from}..{w.request_to}: reported {w.total_items}, got {w.distinct_fetched}"
                for w in mismatched[:EXAMPLES]
            ],
        },
    )


NO_DUPLICATE_IDS = ProviderCheck(
    "no_duplicate_ids", "No completion id occurs twice in the day's file.", _no_duplicate_ids
)
MATCHES_REPORTED_TOTAL = ProviderCheck(
    "matches_reported_total",
    "Every request window returned as many distinct records as its TotalItems.",
    _matches_reported_total,
)
