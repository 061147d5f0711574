"""The data rules behind the asset checks, as pure functions of Arrow tables.

Each rule returns a `RuleResult`: whether it held, how many rows broke it and a
few of their ids, so a failed check tells the reader where to look.
"""

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.partitions import DayWindow

EXAMPLES = 5
ALLOWED_GRADES = ("A", "B", "C", "D", "F", "PASS", "FAIL", "-")
REQUIRED = ("provider", "completion_id", "user_id", "completed_at")


@dataclass(frozen=True)
class RuleResult:
    failed_rows: int
    examples: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.failed_rows == 0

    def metadata(self) -> dict[str, object]:
        return {"failed_rows": self.failed_rows, "example_ids": list(self.examples), **self.details}


def _row_ids(table: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(table["provider"], table["completion_id"], ":")


def _failing(table: pa.Table, mask: pa.ChunkedArray | pa.Array) -> RuleResult:
    mask = pc.fill_null(mask, False)
    bad = table.filter(mask)
    examples = tuple(_row_ids(bad.slice(0, EXAMPLES)).to_pylist())
    return RuleResult(failed_rows=bad.num_rows, examples=examples)


def duplicated_keys(table: pa.Table, keys: list[str]) -> RuleResult:
    """Rows whose `keys` occur more than once (every copy counts)."""
    counts = table.group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    failed = pc.sum(repeated["count_all"]).as_py() or 0
    rows = repeated.slice(0, EXAMPLES).select(keys).to_pylist()
    examples = tuple(":".join(str(row[key]) for key in keys) for row in rows)
    return RuleResult(failed_rows=failed, examples=examples)


def unique_completion_ids(table: pa.Table) -> RuleResult:
    return duplicated_keys(table, ["provider", "completion_id"])


def required_fields_present(table: pa.Table) -> RuleResult:
    missing = [pc.is_null(table[name]) for name in REQUIRED]
    mask = missing[0]
    for other in missing[1:]:
        mask = pc.or_(mask, other)
    result = _failing(table, mask)
    nulls = {f"nulls_{name}": table[name].null_count for name in REQUIRED}
    return RuleResult(result.failed_rows, result.examples, nulls)


def completed_within_partition(table: pa.Table, window: DayWindow) -> RuleResult:
    at = table["completed_at"]
    outside = pc.or_(pc.less(at, pa.scalar(window.start, at.type)),
                     pc.greater_equal(at, pa.scalar(window.end, at.type)))
    result = _failing(table, outside)
    bounds = {"window_start": window.start.isoformat(), "window_end": window.end.isoformat()}
    return RuleResult(result.failed_rows, result.examples, bounds)


def reconciles_with_sources(table: pa.Table, sources: dict[str, pa.Array]) -> RuleResult:
    """Merged rows per provider equal the distinct ids of that provider's file."""
    failed, examples, details = 0, [], {}
    for provider, source_ids in sources.items():
        expected = set(source_ids.to_pylist())
        merged = table.filter(pc.equal(table["provider"], provider))["completion_id"].to_pylist()
        missing = sorted(expected - set(merged))
        extra = sorted(set(merged) - expected)
        repeated = sorted(i for i, n in Counter(merged).items() if n > 1)
        failed += len(missing) + len(extra) + (len(merged) - len(set(merged)))
        examples += [f"{provider}:{i}" for i in missing + extra + repeated]
        details[f"{provider}_source_rows"] = len(expected)
        details[f"{provider}_merged_rows"] = len(merged)
    return RuleResult(failed, tuple(examples[:EXAMPLES]), details)


def started_before_completed(table: pa.Table) -> RuleResult:
    return _failing(table, pc.greater(table["started_at"], table["completed_at"]))


def score_in_range(table: pa.Table) -> RuleResult:
    score = table["score"]
    return _failing(table, pc.or_(pc.less(score, 0.0), pc.greater(score, 100.0)))


def grade_in_allowed_set(table: pa.Table) -> RuleResult:
    grade = table["grade"]
    allowed = pc.is_in(grade, value_set=pa.array(ALLOWED_GRADES))
    return _failing(table, pc.and_(pc.is_valid(grade), pc.invert(allowed)))
