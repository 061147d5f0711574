"""`make demo`: backfill the last 7 complete days of every example connection from the sandbox in one run.

Serves the connections of `COMPLETIONS_CONNECTIONS_FILE`, else of the shipped
example (local/connections.yaml: three Bindbee connectors, two Nexudus accounts).
Prints a table per day (rows per connection, merged rows, check results), who
completed what (names of both providers, and one person's courses joined by
`person_id`) and where the Parquet files are; exits non-zero unless the run succeeded and every
check passed.
"""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local.launch import (
    example_connections,
    local_dagster_home,
    local_sandbox_args,
    materialize_command,
    prepare_dagster_home,
    sandbox_environment,
    sandbox_process,
)
from completions_assets.local.names_report import merged_days, who_completed_what
from completions_assets.local.run_report import day_reports, format_table
from completions_assets.settings import load_settings
from completions_assets.storage import ParquetStorage

DAYS = 7


def materialize_range(first: dt.date, last: dt.date, env: dict[str, str], log: Path) -> int:
    command = materialize_command(first.isoformat(), last.isoformat())
    with log.open("w") as handle:
        return subprocess.run(command, env=env, stdout=handle, stderr=handle).returncode


def main() -> int:
    settings = load_settings()
    last = dt.datetime.now(settings.zone).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=DAYS - 1)
    path, connections = example_connections()
    home = prepare_dagster_home(local_dagster_home(), environ={**os.environ, FILE_VARIABLE: path})
    log = home / "demo-run.log"
    with sandbox_process(local_sandbox_args(connections, dt.date.today())) as base_url:
        print(f"sandbox serving {', '.join(c.label for c in connections)} at {base_url}")
        env = sandbox_environment(base_url, connections=connections) | {"DAGSTER_HOME": str(home), FILE_VARIABLE: path}
        print(f"backfilling {first} ... {last} in one run (log: {log})")
        exit_code = materialize_range(first, last, env, log)
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    storage = ParquetStorage(root=settings.data_root)
    days = [first + dt.timedelta(days=i) for i in range(DAYS)]
    reports = day_reports(instance, run.run_id, days, storage, connections)
    print(format_table(reports))
    print()
    print(who_completed_what(merged_days(storage, days)))
    print(f"\nrun {run.run_id}: {run.status.value}")
    root = Path(storage.path("lms_completions", last)).parents[2]
    print(
        f"Parquet files under {root}/<provider>_completions/connection=<name>/date=YYYY-MM-DD/ "
        f"and {root}/lms_completions/date=YYYY-MM-DD/; enrolments under {root}/nexudus_course_members/connection=<name>/"
    )
    all_passed = all(not r.failed and r.passed for r in reports)
    if exit_code != 0 or not all_passed:
        print(f"FAILED: see {log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
