"""`make demo`: backfill the last 7 complete days from the sandbox in one run.

Prints a table per day (rows per provider, merged rows, check results) and where
the Parquet files are; exits non-zero unless the run succeeded and every check
passed.
"""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg

from completions_assets.settings import load_settings
from completions_assets.local.launch import (
    local_dagster_home,
    prepare_dagster_home,
    sandbox_environment,
    sandbox_process,
)
from completions_assets.local.run_report import day_reports, format_table
from completions_assets.storage import ParquetStorage

DAYS = 7


def materialize_range(first: dt.date, last: dt.date, env: dict[str, str], log: Path) -> int:
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize",
        "-m", "completions_assets.definitions", "--select", "*",
        "--partition-range", f"{first.isoformat()}...{last.isoformat()}",
    ]
    with log.open("w") as handle:
        return subprocess.run(command, env=env, stdout=handle, stderr=handle).returncode


def main() -> int:
    settings = load_settings()
    last = dt.datetime.now(settings.zone).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=DAYS - 1)
    home = prepare_dagster_home(local_dagster_home())
    log = home / "demo-run.log"
    sandbox_args = ["--start-date", (first - dt.timedelta(days=2)).isoformat(), "--days", str(DAYS + 4)]
    with sandbox_process(sandbox_args) as base_url:
        print(f"sandbox serving both providers at {base_url}")
        env = sandbox_environment(base_url) | {"DAGSTER_HOME": str(home)}
        print(f"backfilling {first} ... {last} in one run (log: {log})")
        exit_code = materialize_range(first, last, env, log)
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    storage = ParquetStorage(root=settings.data_root)
    reports = day_reports(instance, run.run_id, [first + dt.timedelta(days=i) for i in range(DAYS)], storage)
    print(format_table(reports))
    print(f"\nrun {run.run_id}: {run.status.value}")
    print(f"Parquet files under {Path(storage.path('lms_completions', last)).parents[2]}/<asset>/date=YYYY-MM-DD/")
    all_passed = all(not r.failed and r.passed for r in reports)
    if exit_code != 0 or not all_passed:
        print(f"FAILED: see {log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
