"""Many connections through the CLI range command, against a sandbox serving
the shipped example's five connections, each with its own data: one run over every connection,
each connection's files equal to its own ground truth, connections fetched in parallel, and a
connection revoked mid-run failing alone."""

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local.launch import (
    REPO,
    example_connections,
    materialize_command,
    prepare_dagster_home,
    sandbox_environment,
)
from completions_assets.local.run_report import check_results
from completions_assets.providers import PROVIDERS
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.app import LoggedRequest
from completions_assets.storage import ParquetStorage

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-02", "2024-03-05"
DAYS = [(dt.date(2024, 3, 2) + dt.timedelta(days=i)) for i in range(4)]
PATH, CONNECTIONS = example_connections({})
SERVED = {p.name: tuple(c.name for c in CONNECTIONS if c.provider is p) for p in PROVIDERS}
COMMAND = materialize_command(FIRST, LAST)


@pytest.fixture(scope="module")
def tenants() -> Iterator[Sandbox]:
    config = SandboxConfig(seed=31, start_date=dt.date(2024, 3, 1), days=6, records_per_day=50, connections=SERVED)
    with start_sandbox(config) as sandbox:
        yield sandbox


def environment(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    home = prepare_dagster_home(tmp_path / "home", environ={FILE_VARIABLE: PATH})
    return sandbox_environment(sandbox.base_url, {"PATH": "/usr/bin:/bin"}, CONNECTIONS) | {
        FILE_VARIABLE: PATH,
        "DAGSTER_HOME": str(home),
        "COMPLETIONS_DATA_ROOT": str(tmp_path / "data"),
        "COMPLETIONS_START_DATE": "2024-01-01",
        "COMPLETIONS_TIMEZONE": "UTC",
        "COMPLETIONS_FRESHNESS_HOUR": "off",
    }


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def fetch_spans(requests: list[LoggedRequest], provider: str, agent: str = "") -> list[tuple[float, float]]:
    """Per connection of `provider`, from its first request's arrival to its last one's answer, by start
    (only requests whose User-Agent holds `agent`)."""
    times: dict[str | None, list[float]] = {}
    for request in requests:
        if request.bucket == provider and agent in request.user_agent:
            times.setdefault(request.connection, []).extend((request.arrived, request.answered))
    return sorted((min(t), max(t)) for t in times.values())


def test_one_run_serves_every_connection_exactly_and_at_once(tenants, tmp_path):
    env = environment(tenants, tmp_path)
    # One executor slot: the connections of a provider still fetch side by side, in its one step.
    narrow = ["--config-json", json.dumps({"execution": {"config": {"multiprocess": {"max_concurrent": 1}}}})]
    seen = len(tenants.request_log())
    # Each connection's fetch spans several answers.
    tenants.update(bindbee=ProviderFaults(latency_ms=100), nexudus=ProviderFaults(latency_ms=100))
    try:
        done = subprocess.run(COMMAND + narrow, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        tenants.update(bindbee=ProviderFaults(), nexudus=ProviderFaults())
    assert done.returncode == 0, done.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    (run,) = instance.get_runs()
    storage = ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"])
    for day in DAYS:
        merged = storage.read("lms_completions", day)
        for connection in CONNECTIONS:
            provider = connection.provider
            truth = tenants.dataset.ground_truth(provider.name, *day_bounds(day), connection=connection.name)
            raw = storage.read(connection.storage_dir, day)
            assert sorted(map(str, raw[provider.id_column].to_pylist())) == sorted(truth), (connection.label, day)
            mine = pc.and_(pc.equal(merged["provider"], provider.name), pc.equal(merged["connection"], connection.name))
            assert sorted(merged.filter(mine)["completion_id"].to_pylist()) == sorted(truth)
        assert merged.num_rows == sum(
            len(tenants.dataset.ground_truth(c.provider.name, *day_bounds(day), connection=c.name)) for c in CONNECTIONS
        )
    assert all(e.passed for e in check_results(instance, run.run_id))
    # The connections' data differ (their own seeds), and the steps ran side by side.
    acme, globex = (
        storage.read(f"bindbee_completions/connection={n}", DAYS[0])["id"].to_pylist() for n in ("acme", "globex")
    )
    assert not set(acme) & set(globex)
    bindbee = fetch_spans(tenants.request_log()[seen:], "bindbee")
    assert len(bindbee) == len(SERVED["bindbee"])
    # Every Bindbee connection started fetching before any other had finished.
    assert max(start for start, _ in bindbee) < min(end for _, end in bindbee), f"connections took turns: {bindbee}"
    # So did the Nexudus accounts' enrolment snapshots, in their own step.
    members = fetch_spans(tenants.request_log()[seen:], "nexudus", agent="course members")
    assert len(members) == len(SERVED["nexudus"])
    assert max(start for start, _ in members) < min(end for _, end in members), f"snapshots took turns: {members}"
    by_connection = tenants.stats()["connections"]
    assert all(by_connection[c.provider.name][c.name]["requests"] > 0 for c in CONNECTIONS)


def test_a_connection_revoked_mid_run_fails_alone(tenants, tmp_path):
    env = environment(tenants, tmp_path)
    tenants.update(revoke_after={"bindbee": {"globex": 1}})  # its first page is served, then 401
    try:
        done = subprocess.run(COMMAND, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        tenants.update(revoke={"bindbee": []}, revoke_after={"bindbee": {}})
    assert done.returncode != 0
    assert "bindbee: HTTP 401" in done.stderr
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    (run,) = instance.get_runs()
    failed = {
        entry.step_key
        for entry in instance.all_logs(run.run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_FAILURE"
    }
    assert failed == {"lms_completions_checks"}  # after merging the others, naming globex
    assert "merged without bindbee:globex" in done.stderr
    storage = ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"])
    for connection in CONNECTIONS:
        written = [storage.read(connection.storage_dir, day) is not None for day in DAYS]
        key = dg.AssetKey([connection.provider.asset_name, connection.name])
        recorded = instance.get_materialized_partitions(key)
        assert recorded == {day.isoformat() for day, done in zip(DAYS, written, strict=True) if done}
        if connection.name == "globex":  # a day whose windows were in before the 401 may be written
            assert written[-1] is False and written == sorted(written, reverse=True), written
        else:
            assert all(written), connection.label
