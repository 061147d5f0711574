"""Stopping a run while a provider step waits on a long Retry-After: it ends within seconds,
leaves no partial file, is marked as ended, frees its pool slot, and a re-run is exact."""

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.sandbox import ProviderFaults, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.dagster_dev import dagster_dev, graphql
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import location_env

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-02", "2024-03-04"
COMMAND = materialize_command(FIRST, LAST)
STOP_WITHIN_S = 10.0


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sigterm_stops_a_run_waiting_on_retry_after_within_seconds(tmp_path):
    config = SandboxConfig(seed=41, start_date=dt.date(2024, 3, 1), days=5, records_per_day=40)
    with start_sandbox(config) as sb:
        env = location_env(sb.base_url, tmp_path)
        root = Path(env["COMPLETIONS_DATA_ROOT"])
        # Every Bindbee request is throttled with a 5-minute Retry-After (within the 15-minute cap).
        sb.update(bindbee=ProviderFaults(fail_status=429, fail_every=1, retry_after="300"))
        log = (tmp_path / "run.log").open("w")
        process = subprocess.Popen(
            COMMAND, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for(lambda: sb.stats()["bindbee"]["statuses"].get("429", 0) >= 1, "the first 429")
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
            stopped_in = time.monotonic() - sent
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        print(f"stopped in {stopped_in:.1f} s")  # shown with -s: the measurement behind the bound
        assert stopped_in < STOP_WITHIN_S, f"took {stopped_in:.1f} s to stop"
        assert sb.stats()["bindbee"]["requests"] <= 2  # the two first windows asked once each, never again early
        assert not list(root.rglob("bindbee_completions/**/*.parquet"))  # nothing half-fetched written
        assert not list(root.rglob("_tmp-*"))
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        (run,) = instance.get_runs()
        assert run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        for pool in ("bindbee-default", "nexudus-default"):
            assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots, pool

        sb.update(bindbee=ProviderFaults())
        done = subprocess.run(COMMAND, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        storage = ParquetStorage(root=str(root))
        for day in ("2024-03-02", "2024-03-03", "2024-03-04"):
            assert_day_matches_ground_truth(sb, storage, day)


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
TERMINATE = """mutation($id: String!) { terminateRun(runId: $id) { __typename
  ... on TerminateRunFailure { message } ... on PythonError { message } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


def test_terminating_from_the_ui_stops_a_run_waiting_on_retry_after_within_seconds(tmp_path):
    config = SandboxConfig(seed=42, start_date=dt.date(2024, 3, 1), days=5, records_per_day=40)
    with start_sandbox(config) as sb:
        env = location_env(sb.base_url, tmp_path)
        sb.update(bindbee=ProviderFaults(fail_status=429, fail_every=1, retry_after="300"))
        with dagster_dev(env) as port:
            params = {
                "selector": {
                    "repositoryLocationName": "completions_assets",
                    "repositoryName": "__repository__",
                    "jobName": "completions_job",
                },
                "executionMetadata": {
                    "tags": [
                        {"key": "dagster/asset_partition_range_start", "value": FIRST},
                        {"key": "dagster/asset_partition_range_end", "value": LAST},
                    ]
                },
            }
            launched = graphql(port, LAUNCH, {"params": params})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            run_id = launched["run"]["runId"]
            wait_for(lambda: sb.stats()["bindbee"]["statuses"].get("429", 0) >= 1, "the first 429", timeout=180)
            sent = time.monotonic()
            assert graphql(port, TERMINATE, {"id": run_id})["terminateRun"]["__typename"] == "TerminateRunSuccess"
            ended = ("CANCELED", "FAILURE")
            wait_for(lambda: graphql(port, STATUS, {"id": run_id})["runOrError"]["status"] in ended, "the run to end")
            stopped_in = time.monotonic() - sent
        print(f"stopped in {stopped_in:.1f} s")  # shown with -s: the measurement behind the bound
        assert stopped_in < STOP_WITHIN_S, f"took {stopped_in:.1f} s to stop"
        assert sb.stats()["bindbee"]["requests"] <= 2  # the two first windows asked once each, never again early
        assert not list(Path(env["COMPLETIONS_DATA_ROOT"]).rglob("bindbee_completions/**/*.parquet"))
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        assert not instance.event_log_storage.get_concurrency_info("bindbee-default").claimed_slots
