"""One connection failing holds no other back: the others' days are written, recorded and merged
in the same run, the failed one keeps its files, the run fails naming it, and
`all_connections_present` names it for the days it lacks."""

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from completions_assets.connections import parse_connections
from completions_assets.defs.assets import build_assets
from completions_assets.defs.resources import build_resources
from completions_assets.keys import LMS
from completions_assets.local.run_report import check_results
from completions_assets.partitions import daily_partitions
from completions_assets.providers import PROVIDERS
from completions_assets.providers.resource import resource_type
from completions_assets.sandbox import Sandbox
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS
from completions_assets.settings import Settings
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import source_dir, source_key

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-04", "2024-03-06"
DAYS = ["2024-03-04", "2024-03-05", "2024-03-06"]
FILE = {
    "bindbee": [
        {"name": "acme", "connector_token_env": "TOKEN_ACME"},
        {"name": "globex", "connector_token_env": "TOKEN_GLOBEX", "start_date": "2024-03-05"},
    ],
    "nexudus": [{"name": "london", "username_env": "USER_LONDON", "password_env": "PASSWORD_LONDON"}],
}
CONNECTIONS = parse_connections(FILE, PROVIDERS, source="test")
SETTINGS = Settings(start_date=dt.date(2024, 1, 1), timezone="UTC", lookback_days=3, data_root="")
FAST: dict[str, Any] = {"max_attempts": 2, "backoff_initial_s": 0.0}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BINDBEE_API_KEY": DEFAULT_CREDENTIALS["BINDBEE_API_KEY"],
        "TOKEN_ACME": DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
        "TOKEN_GLOBEX": DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
        "USER_LONDON": DEFAULT_CREDENTIALS["NEXUDUS_USERNAME"],
        "PASSWORD_LONDON": DEFAULT_CREDENTIALS["NEXUDUS_PASSWORD"],
    }.items():
        monkeypatch.setenv(name, value)


def assets() -> list[dg.AssetsDefinition]:
    return build_assets(daily_partitions(SETTINGS), CONNECTIONS)


def tick(instance: dg.DagsterInstance, previous=None):
    """One evaluation of the automation conditions, as the sensor's tick makes it."""
    defs = dg.Definitions(assets=assets(), resources=build_resources(CONNECTIONS, SETTINGS))
    return dg.evaluate_automation_conditions(defs, instance, cursor=previous.cursor if previous else None)


def run(sandbox: Sandbox, root: Path, instance: dg.DagsterInstance, selection=None) -> dg.ExecuteInProcessResult:
    resources: dict[str, object] = {"storage": ParquetStorage(root=str(root))}
    for provider in dict.fromkeys(c.provider for c in CONNECTIONS):  # as build_resources makes them, at the sandbox
        resources[provider.name] = resource_type(provider)(base_url=sandbox.base_url, **FAST)
    tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
    return dg.materialize(
        assets(), resources=resources, instance=instance, tags=tags, selection=selection, raise_on_error=False
    )


def digests(root: Path, directory: str) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / directory).rglob("*.parquet"))}


MERGE_STEP = "lms_completions.merge_days"
CHECKS_STEP = "lms_completions_checks"


def step_outcomes(result: dg.ExecuteInProcessResult) -> dict[str | None, str]:
    return {e.step_key: e.event_type_value for e in result.all_events if e.is_step_failure or e.is_step_success}


def test_a_revoked_connection_fails_alone_and_the_same_run_merges_the_others(sandbox, tmp_path, env, monkeypatch):
    root, instance = tmp_path / "data", dg.DagsterInstance.ephemeral()
    first = tick(instance)  # the sensor's first tick: nothing to do
    assert first.total_requested == 0
    assert run(sandbox, root, instance).success
    second = tick(instance, first)
    assert second.total_requested == 0  # the run merged every day it fetched
    storage = ParquetStorage(root=str(root))
    assert storage.read(source_dir("bindbee", "globex"), dt.date(2024, 3, 4)).num_rows == 0  # before its start
    globex_before = digests(root, source_dir("bindbee", "globex"))

    monkeypatch.setenv("TOKEN_GLOBEX", "revoked-token-0000")
    failed = run(sandbox, root, instance)
    assert not failed.success
    assert step_outcomes(failed) == {
        "bindbee_completions": "STEP_SUCCESS",
        "nexudus_completions": "STEP_SUCCESS",
        MERGE_STEP: "STEP_SUCCESS",  # the others merged
        CHECKS_STEP: "STEP_FAILURE",  # once the checks are recorded: the run's outcome names globex
    }
    failure = next(e for e in failed.all_events if e.is_step_failure)
    assert "bindbee:globex" in failure.event_specific_data.error.to_string()
    logged = [entry.user_message for entry in instance.all_logs(failed.run_id)]
    assert any("bindbee:globex failed: bindbee: HTTP 403" in message for message in logged)  # the cause
    assert digests(root, source_dir("bindbee", "globex")) == globex_before  # kept byte for byte
    for key in (source_key("bindbee", "acme"), source_key("nexudus", "london"), LMS):
        assert {r.partition_key for r in _materializations(instance, key, failed.run_id)} == set(DAYS)

    present = {
        e.partition: e for e in check_results(instance, failed.run_id) if e.check_name == "all_connections_present"
    }
    # globex starts on the 5th: its 4th is empty by declaration, written without a request.
    assert {day: e.passed for day, e in present.items()} == {DAYS[0]: True, DAYS[1]: False, DAYS[2]: False}
    assert present[DAYS[1]].metadata["connections_failed"].value == ["bindbee:globex"]
    reconciled = [e for e in check_results(instance, failed.run_id) if e.check_name == "reconciles_with_sources"]
    assert len(reconciled) == 3 and all(e.passed for e in reconciled)
    merged = storage.read("lms_completions", dt.date(2024, 3, 5))
    labels = set(zip(merged["provider"].to_pylist(), merged["connection"].to_pylist(), strict=True))
    assert labels == {("bindbee", "acme"), ("bindbee", "globex"), ("nexudus", "london")}
    assert tick(instance, second).total_requested == 0  # nothing is left for automation to merge


def test_an_unset_variable_fails_only_its_connection_naming_the_variable(sandbox, tmp_path, env, monkeypatch):
    monkeypatch.delenv("TOKEN_GLOBEX")
    requests_before = sandbox.stats()["bindbee"]["requests"]
    alone = run(
        sandbox,
        tmp_path / "alone",
        dg.DagsterInstance.ephemeral(),
        selection=dg.AssetSelection.assets(source_key("bindbee", "globex")),
    )
    assert not alone.success
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "environment variable TOKEN_GLOBEX is not set" in failure.event_specific_data.error.to_string()
    assert sandbox.stats()["bindbee"]["requests"] == requests_before  # refused before any request
    instance = dg.DagsterInstance.ephemeral()
    everything = run(sandbox, tmp_path / "data", instance)
    assert step_outcomes(everything) == {
        "bindbee_completions": "STEP_SUCCESS",
        "nexudus_completions": "STEP_SUCCESS",
        MERGE_STEP: "STEP_SUCCESS",
        CHECKS_STEP: "STEP_FAILURE",
    }
    for key in (source_key("bindbee", "acme"), source_key("nexudus", "london"), LMS):
        assert {r.partition_key for r in _materializations(instance, key, everything.run_id)} == set(DAYS)


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str) -> list:
    records = instance.fetch_materializations(key, limit=1000).records
    return [r for r in records if r.run_id == run_id]


def test_days_before_a_connection_starts_cost_no_request(sandbox, tmp_path, env):
    instance = dg.DagsterInstance.ephemeral()
    assert run(sandbox, tmp_path / "data", instance).success
    records = instance.fetch_materializations(source_key("bindbee", "globex"), limit=10).records
    metadata = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert metadata[DAYS[0]]["before_connection_start"].value == "2024-03-05"
    assert metadata[DAYS[0]]["dagster/row_count"].value == 0
    assert "requests" in metadata[DAYS[1]] and "before_connection_start" not in metadata[DAYS[1]]
