"""The code location as users drive it: the CLI range command and `dagster dev`."""

import os
import signal
import socket
import subprocess
import sys
import time

import dagster as dg
import httpx
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.local.run_report import check_results
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import location_env

LMS_CHECK_NAMES = {
    "unique_completion_ids",
    "required_fields_present",
    "completed_within_partition",
    "reconciles_with_sources",
    "started_before_completed",
    "score_in_range",
    "grade_in_allowed_set",
    "all_connections_present",
}


@pytest.fixture(name="location_env")
def location_env_fixture(sandbox, tmp_path) -> dict[str, str]:
    return location_env(sandbox.base_url, tmp_path)


def test_cli_range_command_is_one_run_with_results_per_day(sandbox, location_env):
    command = materialize_command("2024-03-02", "2024-03-04")
    done = subprocess.run(command, env=location_env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(location_env["DAGSTER_HOME"])
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    storage = ParquetStorage(root=location_env["COMPLETIONS_DATA_ROOT"])
    days = ["2024-03-02", "2024-03-03", "2024-03-04"]
    for day in days:
        assert_day_matches_ground_truth(sandbox, storage, day)
    results = {(e.check_name, e.partition, e.passed) for e in check_results(instance, runs[0].run_id)}
    names = LMS_CHECK_NAMES | {"no_duplicate_ids", "matches_reported_total"}
    assert results == {(name, day, True) for name in names for day in days}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


GRAPHQL = """{
  assetNodes { assetKey { path } isPartitioned
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name cronSchedule executionTimezone } } } }
}"""
READY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def graphql(port: int, query: str) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def wait_until_loaded(server: subprocess.Popen, port: int, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:  # bounded: readiness, not timing
        assert server.poll() is None, "dagster dev exited"
        try:
            entries = graphql(port, READY)["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                return
        except (httpx.HTTPError, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise AssertionError("dagster dev did not load the code location in time")


def test_dagster_dev_serves_assets_checks_job_and_schedule(location_env):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env=location_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_loaded(server, port)
        data = graphql(port, GRAPHQL)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group led by the PID we started
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    nodes = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {("bindbee_completions", "default"), ("nexudus_completions", "default"), ("lms_completions",)}
    assert all(node["isPartitioned"] for node in nodes.values())
    checks = {
        (path[0], c["name"], c["blocking"]) for path, n in nodes.items() for c in n["assetChecksOrError"]["checks"]
    }
    assert checks == (
        {("lms_completions", name, name == "unique_completion_ids") for name in LMS_CHECK_NAMES}
        | {("bindbee_completions", "no_duplicate_ids", True), ("nexudus_completions", "matches_reported_total", False)}
    )
    repository = data["repositoriesOrError"]["nodes"][0]
    assert "completions_job" in {job["name"] for job in repository["jobs"]}
    assert repository["schedules"] == [
        {"name": "completions_daily_schedule", "cronSchedule": "5 0 * * *", "executionTimezone": "UTC"}
    ]
