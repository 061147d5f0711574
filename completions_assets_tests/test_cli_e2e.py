"""The code location as users drive it: the CLI range command and `dagster dev`."""

import re
import subprocess

import dagster as dg
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.local.run_report import check_results
from completions_assets.storage import ParquetStorage
from completions_assets_tests.dagster_dev import dagster_dev, graphql
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import LMS_CHECK_NAMES, MEMBERS_CHECK_NAMES, location_env

pytestmark = pytest.mark.e2e


@pytest.fixture(name="location_env")
def location_env_fixture(sandbox, tmp_path) -> dict[str, str]:
    return location_env(sandbox.base_url, tmp_path)


def test_cli_range_command_is_one_run_with_results_per_day(sandbox, location_env):
    command = materialize_command("2024-03-02", "2024-03-04")
    done = subprocess.run(command, env=location_env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # A successful run says nothing alarming: no warning or error, no traceback, no check
    # reported as missing (its results go out as one evaluation per day).
    alarming = re.compile(r" - (WARNING|ERROR|CRITICAL) - |Traceback|Warning\b|did not yield|emitted no result")
    assert not [line for line in (done.stdout + done.stderr).splitlines() if alarming.search(line)]
    instance = dg.DagsterInstance.from_config(location_env["DAGSTER_HOME"])
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
    storage = ParquetStorage(root=location_env["COMPLETIONS_DATA_ROOT"])
    days = ["2024-03-02", "2024-03-03", "2024-03-04"]
    for day in days:
        assert_day_matches_ground_truth(sandbox, storage, day)
    results = {(e.check_name, e.partition, e.passed) for e in check_results(instance, runs[0].run_id)}
    names = LMS_CHECK_NAMES | {"no_duplicate_ids", "matches_reported_total", "no_mass_removal"}
    members = {(name, None, True) for name in MEMBERS_CHECK_NAMES}  # the enrolment snapshot, unpartitioned
    assert results == {(name, day, True) for name in names for day in days} | members


GRAPHQL = """{
  assetNodes { assetKey { path } isPartitioned
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    jobs { name } schedules { name cronSchedule executionTimezone } } } }
}"""


def test_dagster_dev_serves_assets_checks_job_and_schedule(location_env):
    with dagster_dev(location_env) as port:
        data = graphql(port, GRAPHQL)
    nodes = {tuple(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    snapshot = ("nexudus_course_members", "default")
    assert set(nodes) == {
        ("bindbee_completions", "default"),
        ("nexudus_completions", "default"),
        ("lms_completions",),
        snapshot,
    }
    assert all(node["isPartitioned"] == (path != snapshot) for path, node in nodes.items())
    checks = {
        (path[0], c["name"], c["blocking"]) for path, n in nodes.items() for c in n["assetChecksOrError"]["checks"]
    }
    assert checks == (
        {("lms_completions", name, name == "unique_completion_ids") for name in LMS_CHECK_NAMES}
        | {("bindbee_completions", "no_duplicate_ids", False), ("nexudus_completions", "matches_reported_total", False)}
        | {(provider, "no_mass_removal", False) for provider in ("bindbee_completions", "nexudus_completions")}
        | {("nexudus_course_members", name, False) for name in MEMBERS_CHECK_NAMES}
    )
    repository = data["repositoriesOrError"]["nodes"][0]
    assert {"completions_job", "completions_audit_job"} <= {job["name"] for job in repository["jobs"]}
    assert sorted(repository["schedules"], key=lambda s: s["name"]) == [
        {"name": "completions_audit_schedule", "cronSchedule": "35 3 * * *", "executionTimezone": "UTC"},
        {"name": "completions_daily_schedule", "cronSchedule": "5 0 * * *", "executionTimezone": "UTC"},
    ]
