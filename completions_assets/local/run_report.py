"""What one run did, day by day: rows per connection's file, merged rows, and check results."""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.storage import ParquetStorage

MERGED = "lms_completions"


@dataclass
class DayReport:
    day: dt.date
    rows: dict[str, int | None] = field(default_factory=dict)  # connection label (or "merged") -> rows
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def check_results(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
    ).records
    events = (record.event_log_entry.dagster_event for record in records)
    return [cast(dg.AssetCheckEvaluation, event.event_specific_data) for event in events if event is not None]


def day_reports(
    instance: dg.DagsterInstance,
    run_id: str,
    days: list[dt.date],
    storage: ParquetStorage,
    connections: Sequence[Connection],
) -> list[DayReport]:
    by_day = defaultdict(list)
    for evaluation in check_results(instance, run_id):
        by_day[evaluation.partition].append(evaluation)
    files = {c.label: c.storage_dir for c in connections} | {"merged": MERGED}
    reports = []
    for day in days:
        report = DayReport(day)
        for label, directory in files.items():
            table = storage.read(directory, day, columns=[])
            report.rows[label] = None if table is None else table.num_rows
        for evaluation in by_day[day.isoformat()]:
            name = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
            (report.passed if evaluation.passed else report.failed).append(name)
        reports.append(report)
    return reports


def format_table(reports: list[DayReport]) -> str:
    """Rows per connection (`provider:name`) and merged rows, one line per day."""
    labels = list(reports[0].rows) if reports else []
    width = max([9, *(len(label) + 2 for label in labels)])
    header = f"{'day':<12}" + "".join(f"{label:>{width}}" for label in labels) + f"{'checks passed':>15}  failed"
    lines = [header, "-" * len(header)]
    for report in reports:
        cells = "".join(f"{'-' if n is None else n:>{width}}" for n in report.rows.values())
        failed = ", ".join(sorted(report.failed)) or "none"
        lines.append(f"{report.day.isoformat():<12}{cells}{len(report.passed):>15}  {failed}")
    return "\n".join(lines)
