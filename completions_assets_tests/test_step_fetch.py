"""A provider's step fetching many connections at once, without Dagster around it: each connection's
file exact, and the records held at once bounded by the step's budget, not by the connections, which fetch
side by side whatever the size of their days."""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from completions_assets.connections import Connection, parse_connections
from completions_assets.local.launch import sandbox_environment
from completions_assets.providers import PROVIDERS
from completions_assets.providers.planning import StepRecords
from completions_assets.providers.resource import ProviderResource, resource_type
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.config import credential_name
from completions_assets.steps.fetching import StepFetch, fetch_connections
from completions_assets.steps.removals import RemovalGuard
from completions_assets.storage import ParquetStorage
from completions_assets.turns import PoolSlots
from completions_assets_tests.clients_support import days_between

pytestmark = pytest.mark.integration

NAMES = tuple(f"c{n}" for n in range(1, 7))
PER_DAY = 2_000
PAGE = 100
STEP_BUDGET = 1_000
DAY = "2024-03-02"
PACING_OFF: dict[str, Any] = {"requests_per_minute": 0}


@contextmanager
def _step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int, **sandbox: Any
) -> Iterator[tuple[Sandbox, list[tuple[Connection, ProviderResource]], StepFetch]]:
    """A sandbox serving the six connections `sandbox` describes, their resources (pacing off) and a
    step over DAY with a records budget of `budget`."""
    config = SandboxConfig(
        start_date=dt.date(2024, 3, 1), days=3, records_per_day=PER_DAY, connections={"bindbee": NAMES}, **sandbox
    )
    document = {
        "bindbee": [{"name": n, "connector_token_env": credential_name("BINDBEE_CONNECTOR_TOKEN", n)} for n in NAMES]
    }
    connections = parse_connections(document, PROVIDERS, source="test")
    with start_sandbox(config) as sb:
        for name, value in sandbox_environment(sb.base_url, {}, connections).items():
            monkeypatch.setenv(name, value)
        resources = [
            (c, resource_type(c.provider)(base_url=sb.base_url, secret_env=dict(c.secrets), **PACING_OFF))
            for c in connections
        ]
        step = StepFetch(
            days=days_between(DAY, DAY),
            storage=ParquetStorage(root=str(tmp_path)),
            records=StepRecords(budget),
            checks=frozenset(),
            slots=PoolSlots(dg.DagsterInstance.ephemeral(), "run", "bindbee_completions", ()),
            guard=RemovalGuard(0.2),
        )
        yield sb, resources, step


def test_connections_fetched_at_once_hold_no_more_than_the_step_budget_and_one_window(tmp_path, monkeypatch):
    with _step(tmp_path, monkeypatch, STEP_BUDGET, seed=71) as (sb, resources, step):
        said: list[str] = []
        outcomes = list(fetch_connections(resources, step, len(NAMES), said.append))
        start = dt.datetime(2024, 3, 2, tzinfo=dt.timezone.utc)
        truth = {
            n: sb.dataset.ground_truth("bindbee", start, start + dt.timedelta(days=1), connection=n) for n in NAMES
        }
    assert [o.error for o in outcomes] == [None] * len(NAMES)
    storage = ParquetStorage(root=str(tmp_path))
    for connection, _ in resources:
        table = storage.read(connection.storage_dir, dt.date(2024, 3, 2))
        assert sorted(table["id"].to_pylist()) == sorted(truth[connection.name]), connection.name
    # Six connections of 2,000 records each would hold 12,000 at once unbounded; the step holds its
    # budget, and the one connection with priority may exceed it by its window (a day here) and a page.
    held_by_one = max(len(ids) for ids in truth.values()) + PAGE
    assert 0 < step.records.peak <= STEP_BUDGET + held_by_one, step.records.peak
    assert said == []  # nobody waited for a turn


def test_connections_whose_days_exceed_the_step_budget_still_fetch_side_by_side(tmp_path, monkeypatch):
    # Each connection's day (2,000 records) is half the step's budget: were a day held until it is
    # written, two connections would fetch at a time and the others wait for them. Written to disk a
    # batch at a time, every connection walks its pages while the others do.
    with _step(tmp_path, monkeypatch, 4_000, seed=72, bindbee=ProviderFaults(latency_ms=20)) as (sb, resources, step):
        outcomes = list(fetch_connections(resources, step, len(NAMES), lambda said: None))
        logged = [r for r in sb.request_log() if r.bucket == "bindbee"]
    assert [o.error for o in outcomes] == [None] * len(NAMES)
    # Every connection had started before any finished: held days would start a third connection
    # only once one of the first two was done. (How many requests fall in that stretch depends on
    # how the machine schedules threads, so it is reported, not asserted.)
    started = max(min(r.arrived for r in logged if r.connection == n) for n in NAMES)
    finished = min(max(r.answered for r in logged if r.connection == n) for n in NAMES)
    together = [r for r in logged if started <= r.arrived and r.answered <= finished]
    assert len(logged) == len(NAMES) * PER_DAY // PAGE
    assert started < finished, f"a connection started only after another finished ({len(together)} together)"
