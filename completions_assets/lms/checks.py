"""The checks of `lms_completions` (docs/contract.md, "Checks"), each declared next to its evaluation.

They run in the merge step on the tables it has just built (one result per
check and day, also in range runs); a run of the checks alone reads the day's
files instead.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.lms.schema import LMS_KEY
from completions_assets.partitions import PartitionDay
from completions_assets.providers.checks import EXAMPLES, CheckOutcome, duplicated_keys

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
ALLOWED_GRADES = ("A", "B", "C", "D", "F", "PASS", "FAIL", "-")
REQUIRED = ("provider", "completion_id", "user_id", "completed_at")


@dataclass(frozen=True)
class Day:
    """One day's merged rows and, per connection (`provider:name`), the distinct ids of its file."""

    partition: PartitionDay
    table: pa.Table
    source_ids: Mapping[str, pa.Array]
    absent: tuple[str, ...] = ()  # configured connections without a file for the day
    failed: tuple[str, ...] = ()  # connections whose latest attempt at the day failed
    names_resolved_min: float = 0.99  # COMPLETIONS_NAMES_RESOLVED_MIN


@dataclass(frozen=True)
class LmsCheck:
    name: str
    description: str
    severity: dg.AssetCheckSeverity
    blocking: bool
    evaluate: Callable[[Day], CheckOutcome]


LMS_CHECKS: list[LmsCheck] = []


def lms_check(severity: dg.AssetCheckSeverity, description: str, *, blocking: bool = False):
    """Declares the decorated rule as a check named after it."""

    def declare(evaluate: Callable[[Day], CheckOutcome]) -> Callable[[Day], CheckOutcome]:
        LMS_CHECKS.append(LmsCheck(evaluate.__name__, description, severity, blocking, evaluate))
        return evaluate

    return declare


def _row_ids(table: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(*(table[key] for key in LMS_KEY), ":")


def _failing(table: pa.Table, mask: pa.ChunkedArray | pa.Array, **details: object) -> CheckOutcome:
    bad = table.filter(pc.fill_null(mask, False))
    return CheckOutcome(bad.num_rows, tuple(_row_ids(bad.slice(0, EXAMPLES)).to_pylist()), details)


@lms_check(ERROR, "No two rows share (provider, connection, completion_id).", blocking=True)
def unique_completion_ids(day: Day) -> CheckOutcome:
    return duplicated_keys(day.table, LMS_KEY)


@lms_check(ERROR, "provider, completion_id, user_id, completed_at are never null.")
def required_fields_present(day: Day) -> CheckOutcome:
    missing = [pc.is_null(day.table[name]) for name in REQUIRED]
    mask = missing[0]
    for other in missing[1:]:
        mask = pc.or_(mask, other)
    return _failing(day.table, mask, **{f"nulls_{name}": day.table[name].null_count for name in REQUIRED})


@lms_check(ERROR, "Every completed_at lies in the day's half-open interval.")
def completed_within_partition(day: Day) -> CheckOutcome:
    at, partition = day.table["completed_at"], day.partition
    outside = pc.or_(
        pc.less(at, pa.scalar(partition.start, at.type)), pc.greater_equal(at, pa.scalar(partition.end, at.type))
    )
    # window_start/window_end: metadata keys already recorded in Dagster, kept as they are.
    return _failing(day.table, outside, window_start=partition.start.isoformat(), window_end=partition.end.isoformat())


@lms_check(ERROR, "Rows per (provider, connection) equal the deduplicated rows of its file.")
def reconciles_with_sources(day: Day) -> CheckOutcome:
    failed, examples = 0, []
    source_rows, merged_rows = {}, {}
    labels = pc.binary_join_element_wise(day.table["provider"], day.table["connection"], ":")
    for label, source_ids in day.source_ids.items():
        merged = day.table.filter(pc.equal(labels, label))["completion_id"].combine_chunks()
        counts = pc.value_counts(merged)
        ids, times = counts.field("values"), counts.field("counts")
        missing = source_ids.filter(pc.invert(pc.is_in(source_ids, value_set=ids)))
        extra = ids.filter(pc.invert(pc.is_in(ids, value_set=source_ids)))
        failed += len(missing) + len(extra) + (len(merged) - len(ids))
        for part in (missing, extra, ids.filter(pc.greater(times, 1))):
            examples += [f"{label}:{i}" for i in _first_sorted(part)]
        source_rows[label], merged_rows[label] = len(source_ids), len(merged)
    orphans = pc.invert(pc.is_in(labels, pa.array(list(day.source_ids), pa.string())))
    stray = day.table.filter(orphans)  # rows of a connection that has no source file
    failed += stray.num_rows
    examples += _row_ids(stray.slice(0, EXAMPLES)).to_pylist()
    details = {"source_rows": dg.MetadataValue.json(source_rows), "merged_rows": dg.MetadataValue.json(merged_rows)}
    return CheckOutcome(failed, tuple(examples[:EXAMPLES]), details)


@lms_check(ERROR, "Every configured connection has a file for the day, and its latest attempt did not fail.")
def all_connections_present(day: Day) -> CheckOutcome:
    lacking = sorted({*day.absent, *day.failed})
    details = {"connections_without_file": list(day.absent), "connections_failed": list(day.failed)}
    return CheckOutcome(len(lacking), tuple(lacking[:EXAMPLES]), details)


def _first_sorted(values: pa.Array, count: int = EXAMPLES) -> list[str]:
    """The first `count` of `values` in order: all a check names."""
    return values.take(pc.sort_indices(values)).slice(0, count).to_pylist()


@lms_check(WARN, "started_at <= completed_at where both are set.")
def started_before_completed(day: Day) -> CheckOutcome:
    return _failing(day.table, pc.greater(day.table["started_at"], day.table["completed_at"]))


@lms_check(WARN, "0 <= score <= 100 where set.")
def score_in_range(day: Day) -> CheckOutcome:
    score = day.table["score"]
    return _failing(day.table, pc.or_(pc.less(score, 0.0), pc.greater(score, 100.0)))


@lms_check(WARN, "grade is A, B, C, D, F, PASS, FAIL or '-' where set.")
def grade_in_allowed_set(day: Day) -> CheckOutcome:
    grade = day.table["grade"]
    allowed = pc.is_in(grade, value_set=pa.array(ALLOWED_GRADES))
    return _failing(day.table, pc.and_(pc.is_valid(grade), pc.invert(allowed)))


UNRESOLVED_LISTED = 20  # user ids listed per connection by names_resolved


@lms_check(
    WARN,
    "Per provider and connection, at least COMPLETIONS_NAMES_RESOLVED_MIN (default 99 %) of the rows name "
    "their person (user_name, person_id) and, where they have a course, its title.",
)
def names_resolved(day: Day) -> CheckOutcome:
    table = day.table
    resolved = pc.and_(pc.is_valid(table["user_name"]), pc.is_valid(table["person_id"]))
    resolved = pc.and_(resolved, pc.or_(pc.is_null(table["course_id"]), pc.is_valid(table["course_title"])))
    labels = pc.binary_join_element_wise(table["provider"], table["connection"], ":")
    failed, shares, unresolved = 0, {}, {}
    for label in sorted(pc.unique(labels).to_pylist()):
        mine = pc.equal(labels, label)
        rows = pc.sum(mine).as_py() or 0
        missing = table.filter(pc.and_(mine, pc.invert(resolved)))
        shares[label] = round(1 - missing.num_rows / rows, 4)
        if missing.num_rows:
            unresolved[label] = _first_sorted(pc.unique(missing["user_id"]).drop_null(), UNRESOLVED_LISTED)
        if shares[label] < day.names_resolved_min:
            failed += missing.num_rows
    details = {
        "threshold": day.names_resolved_min,
        "resolved_share": dg.MetadataValue.json(shares),
        "unresolved_user_ids": dg.MetadataValue.json(unresolved),
    }
    return CheckOutcome(
        failed, tuple(f"{label}:{ids[0]}" for label, ids in unresolved.items() if ids)[:EXAMPLES], details
    )


def lms_check_specs(asset: dg.AssetKey, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            c.name, asset=asset, description=c.description, blocking=c.blocking, partitions_def=partitions_def
        )
        for c in LMS_CHECKS
    ]


def evaluate_day(
    asset: dg.AssetKey, partition: PartitionDay, day: Day | None, names: set[str], missing: str = ""
) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per selected check of one day; every one fails when the day has no file."""
    for check in LMS_CHECKS:
        if check.name not in names:
            continue
        metadata: dict[str, Any]
        if day is None:
            passed, metadata = False, {"error": missing}
        else:
            outcome = check.evaluate(day)
            passed, metadata = outcome.passed, outcome.metadata()
        yield dg.AssetCheckEvaluation(
            asset_key=asset,
            check_name=check.name,
            passed=passed,
            metadata=metadata,
            severity=check.severity,
            blocking=check.blocking,
            partition=partition.date.isoformat(),
        )
