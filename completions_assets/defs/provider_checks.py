"""Checks on the provider assets, evaluated while each day is fetched.

They need facts only the fetch has (the `TotalItems` each request reported), so
they run inside the provider asset and yield one evaluation per partition.
"""

import dagster as dg

from completions_assets.defs.asset_keys import BINDBEE, NEXUDUS
from completions_assets.providers.base import DayBatch
from completions_assets.defs.check_rules import EXAMPLES, duplicated_keys


def no_duplicate_ids(batch: DayBatch) -> dg.AssetCheckEvaluation:
    result = duplicated_keys(batch.table, ["id"])
    return dg.AssetCheckEvaluation(
        asset_key=BINDBEE,
        check_name="no_duplicate_ids",
        passed=result.passed,
        metadata=result.metadata(),
        blocking=True,
        partition=batch.window.day.isoformat(),
    )


def matches_reported_total(batch: DayBatch) -> dg.AssetCheckEvaluation:
    windows = batch.stats.windows
    mismatched = [w for w in windows if w.total_items != w.distinct_fetched]
    examples = [
        f"{w.request_from}..{w.request_to}: reported {w.total_items}, got {w.distinct_fetched}"
        for w in mismatched[:EXAMPLES]
    ]
    return dg.AssetCheckEvaluation(
        asset_key=NEXUDUS,
        check_name="matches_reported_total",
        passed=not mismatched,
        metadata={
            "failed_rows": sum(abs(w.total_items - w.distinct_fetched) for w in mismatched),
            "request_windows": len(windows),
            "mismatched_windows": examples,
        },
        partition=batch.window.day.isoformat(),
    )
