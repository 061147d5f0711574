"""What one run did, day by day: rows per file and check results from the instance."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg

from completions_assets.providers import PROVIDERS
from completions_assets.storage import ParquetStorage

ASSETS = (*(provider.asset_name for provider in PROVIDERS), "lms_completions")


@dataclass
class DayReport:
    day: dt.date
    rows: dict[str, int | None] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def check_results(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
    ).records
    return [record.event_log_entry.dagster_event.event_specific_data for record in records]


def day_reports(
    instance: dg.DagsterInstance, run_id: str, days: list[dt.date], storage: ParquetStorage
) -> list[DayReport]:
    by_day = defaultdict(list)
    for evaluation in check_results(instance, run_id):
        by_day[evaluation.partition].append(evaluation)
    reports = []
    for day in days:
        report = DayReport(day)
        for asset in ASSETS:
            table = storage.read(asset, day)
            report.rows[asset] = None if table is None else table.num_rows
        for evaluation in by_day[day.isoformat()]:
            name = f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}"
            (report.passed if evaluation.passed else report.failed).append(name)
        reports.append(report)
    return reports


def format_table(reports: list[DayReport]) -> str:
    names = [*(provider.name for provider in PROVIDERS), "merged"]
    header = f"{'day':<12}" + "".join(f"{name:>9}" for name in names) + f"{'checks passed':>15}  failed"
    lines = [header, "-" * len(header)]
    for report in reports:
        rows = [report.rows[asset] for asset in ASSETS]
        cells = "".join(f"{'-' if n is None else n:>9}" for n in rows)
        failed = ", ".join(sorted(report.failed)) or "none"
        lines.append(f"{report.day.isoformat():<12}{cells}{len(report.passed):>15}  {failed}")
    return "\n".join(lines)
