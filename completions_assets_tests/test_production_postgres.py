"""deploy/dagster.yaml against a real PostgreSQL server started on 127.0.0.1: runs,
per-day check results and pool limits are recorded in PostgreSQL and read back;
and the CLI range command with the whole production profile (PostgreSQL + S3)."""

import json
import subprocess
from contextlib import closing

import dagster as dg
import pytest
import s3fs
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from completions_assets.local.launch import REPO, materialize_command, prepare_dagster_home, sandbox_environment
from completions_assets.local.run_report import check_results
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import LMS_CHECK_NAMES, MEMBERS_CHECK_NAMES, materialize_range, resources

pytestmark = pytest.mark.e2e

PRODUCTION_CONFIG = REPO / "deploy" / "dagster.yaml"
DAYS = ["2024-03-06", "2024-03-07", "2024-03-08"]
CLI_DAYS = ["2024-03-10", "2024-03-11"]


@pytest.fixture
def production_home(postgres_server, tmp_path, monkeypatch) -> str:
    """A DAGSTER_HOME holding deploy/dagster.yaml, with DAGSTER_PG_* set."""
    for name, value in postgres_server.environment().items():
        monkeypatch.setenv(name, value)
    return str(prepare_dagster_home(tmp_path / "home", PRODUCTION_CONFIG))


def test_instance_uses_postgres_a_run_queue_provider_pools_and_run_monitoring(production_home):
    with dg.DagsterInstance.from_config(production_home) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs > 0
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


def test_range_run_and_per_day_check_results_are_recorded_in_postgres(
    sandbox, postgres_server, production_home, tmp_path
):
    with dg.DagsterInstance.from_config(production_home) as instance:
        result = materialize_range(DAYS[0], DAYS[-1], resources(sandbox.base_url, str(tmp_path / "data")), instance)
        assert result.success

    # Read back through a fresh instance, as the webserver or another machine would.
    with dg.DagsterInstance.from_config(production_home) as instance:
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        for name in LMS_CHECK_NAMES:
            key = dg.AssetCheckKey(dg.AssetKey("lms_completions"), name)
            history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
            ours = sorted((r.partition, r.status.value) for r in history if r.run_id == result.run_id)
            assert ours == [(day, "SUCCEEDED") for day in DAYS]
        assert set(DAYS) <= instance.get_materialized_partitions(dg.AssetKey("lms_completions"))
        for pool in ("bindbee-default", "nexudus-default"):
            assert instance.event_log_storage.get_concurrency_info(pool).slot_count == 1

    # And straight from the tables, so nothing came from a local file.
    with closing(postgres_server.connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT check_name, partition, execution_status FROM asset_check_executions WHERE run_id = %s",
            (result.run_id,),
        )
        rows = set(cursor.fetchall())
        assert {(name, day, "SUCCEEDED") for name in LMS_CHECK_NAMES for day in DAYS} <= rows
        assert {(name, None, "SUCCEEDED") for name in MEMBERS_CHECK_NAMES} <= rows  # the enrolment snapshot
        assert {day for _, day, _ in rows} == {*DAYS, None}
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND event LIKE %s",
            (result.run_id, f"%{postgres_server.password}%"),
        )
        assert cursor.fetchone() == (0,)  # the database password is in no event


def test_cli_range_run_with_the_whole_production_profile(sandbox, s3_environment, postgres_server, production_home):
    """`dagster asset materialize` as an operator runs it: instance on PostgreSQL, data in S3."""
    s3fs.S3FileSystem().mkdir("completions-cli", region_name=s3_environment.region)
    root = "s3://completions-cli/data"
    env = (
        sandbox_environment(sandbox.base_url)
        | postgres_server.environment()
        | s3_environment.environment()
        | {
            "DAGSTER_HOME": production_home,
            "COMPLETIONS_DATA_ROOT": root,
            "COMPLETIONS_START_DATE": "2024-01-01",
            "COMPLETIONS_TIMEZONE": "UTC",
            "COMPLETIONS_FRESHNESS_HOUR": "off",
        }
    )
    command = materialize_command(
        CLI_DAYS[0],
        CLI_DAYS[-1],
        # One process: each extra step process would add seconds, not coverage.
        "--config-json",
        json.dumps({"execution": {"config": {"in_process": {}}}}),
    )
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    with dg.DagsterInstance.from_config(production_home) as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/asset_partition_range_start": CLI_DAYS[0]}))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        results = {(e.check_name, e.partition, e.passed) for e in check_results(instance, run.run_id)}
        assert {(name, day, True) for name in LMS_CHECK_NAMES for day in CLI_DAYS} <= results
    for day in CLI_DAYS:
        assert_day_matches_ground_truth(sandbox, ParquetStorage(root=root), day)
    output = done.stdout + done.stderr
    assert s3_environment.secret_access_key not in output and postgres_server.password not in output
