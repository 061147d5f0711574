"""Asset checks on `lms_completions`, one evaluation per partition (SPEC section 8).

One multi-check reads each day's merged file once and evaluates every selected
rule on it; in a range run it still records a result per day.
"""

from collections.abc import Callable, Iterator

import dagster as dg
import pyarrow as pa

from completions_assets.defs import check_rules as rules
from completions_assets.defs.asset_keys import LMS
from completions_assets.partitions import windows_for
from completions_assets.storage import ParquetStorage
from completions_assets.lms.merge import keep_latest
from completions_assets.partitions import DayWindow

SOURCES = {"bindbee": "bindbee_completions", "nexudus": "nexudus_completions"}

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


class Day:
    """The merged file of one day and, read only if a rule asks, its sources."""

    def __init__(self, window: DayWindow, table: pa.Table, storage: ParquetStorage):
        self.window, self.table, self._storage = window, table, storage

    def source_ids(self) -> dict[str, pa.Array]:
        ids = {}
        for provider, asset in SOURCES.items():
            raw = self._storage.read(asset, self.window.day)
            if raw is None:
                ids[provider] = pa.array([], pa.string())
                continue
            latest = keep_latest(raw, ["id"], "modified_at" if provider == "bindbee" else "updated_on")
            ids[provider] = latest["id"].cast(pa.string()).combine_chunks()
        return ids


RULES: dict[str, tuple[dg.AssetCheckSeverity, bool, str, Callable[[Day], rules.RuleResult]]] = {
    "unique_completion_ids": (ERROR, True, "No two rows share (provider, completion_id).",
                              lambda d: rules.unique_completion_ids(d.table)),
    "required_fields_present": (ERROR, False, "provider, completion_id, user_id, completed_at are never null.",
                                lambda d: rules.required_fields_present(d.table)),
    "completed_within_partition": (ERROR, False, "Every completed_at lies in the day's half-open window.",
                                   lambda d: rules.completed_within_partition(d.table, d.window)),
    "reconciles_with_sources": (ERROR, False, "Rows per provider equal the deduplicated rows of its file.",
                                lambda d: rules.reconciles_with_sources(d.table, d.source_ids())),
    "started_before_completed": (WARN, False, "started_at <= completed_at where both are set.",
                                 lambda d: rules.started_before_completed(d.table)),
    "score_in_range": (WARN, False, "0 <= score <= 100 where set.",
                       lambda d: rules.score_in_range(d.table)),
    "grade_in_allowed_set": (WARN, False, "grade is A, B, C, D, F, PASS, FAIL or '-' where set.",
                             lambda d: rules.grade_in_allowed_set(d.table)),
}


def build_lms_checks(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(name, asset=LMS, description=description, blocking=blocking,
                          partitions_def=partitions_def)
        for name, (_, blocking, description, _) in RULES.items()
    ]

    @dg.multi_asset_check(specs=specs, can_subset=True, name="lms_completions_checks")
    def lms_completions_checks(
        context: dg.AssetCheckExecutionContext, storage: ParquetStorage
    ) -> Iterator[dg.AssetCheckEvaluation]:
        selected = [key.name for key in context.selected_asset_check_keys]
        for window in windows_for(partitions_def, context.op_execution_context.partition_keys):
            yield from evaluate_day(window, storage, selected)

    return lms_completions_checks


def evaluate_day(
    window: DayWindow, storage: ParquetStorage, names: list[str]
) -> Iterator[dg.AssetCheckEvaluation]:
    partition = window.day.isoformat()
    table = storage.read(LMS.path[-1], window.day)
    for name in sorted(names, key=list(RULES).index):
        severity, blocking, _, rule = RULES[name]
        if table is None:
            passed, metadata = False, {"error": f"no file at {storage.path(LMS.path[-1], window.day)}"}
        else:
            result = rule(Day(window, table, storage))
            passed, metadata = result.passed, result.metadata()
        yield dg.AssetCheckEvaluation(
            asset_key=LMS, check_name=name, passed=passed, metadata=metadata,
            severity=severity, blocking=blocking, partition=partition,
        )

