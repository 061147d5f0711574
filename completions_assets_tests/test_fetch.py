"""Range fetching: day splitting, sweeps in order with bounded concurrency, request cost, resources."""

import datetime as dt
import math
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from completions_assets.partitions import DayWindow
from completions_assets.providers.bindbee import BINDBEE_SCHEMA, BindbeeResource
from completions_assets.providers.nexudus.client import NexudusResource
from completions_assets.providers.sweeps import FetchStats, SweepResult, run_sweeps, split_days, sweep_groups
from completions_assets.sandbox import Sandbox
from completions_assets.settings import ConfigurationError
from completions_assets_tests.clients_support import Oracle, bindbee_client, nexudus_client, running_sandbox, windows

UTC = dt.timezone.utc
JAN_2 = dt.datetime(2024, 1, 2, tzinfo=UTC)
MICRO = dt.timedelta(microseconds=1)


def _table(rows: list[tuple[str, dt.datetime]]) -> pa.Table:
    columns = {
        name: pa.nulls(len(rows), field.type) for name, field in zip(BINDBEE_SCHEMA.names, BINDBEE_SCHEMA, strict=True)
    }
    columns["id"] = pa.array([r[0] for r in rows], pa.string())
    columns["completed_at"] = pa.array([r[1] for r in rows], BINDBEE_SCHEMA.field("completed_at").type)
    return pa.table(columns, schema=BINDBEE_SCHEMA)


def test_days_are_cut_half_open_and_sorted_by_time_then_id() -> None:
    rows = [
        ("z", JAN_2),
        ("b", JAN_2 - MICRO),
        ("a", JAN_2 - dt.timedelta(days=1)),
        ("c", JAN_2 - MICRO),
        ("early", JAN_2 - dt.timedelta(days=2)),
        ("late", JAN_2 + dt.timedelta(days=1)),
        ("c", JAN_2 - MICRO),
    ]
    first, second = split_days(_table(rows), windows("2024-01-01", "2024-01-02"), "completed_at", "id")
    assert first["id"].to_pylist() == ["a", "b", "c", "c"]  # duplicates as served
    assert second["id"].to_pylist() == ["z"]  # exactly at midnight: the next day only
    assert first.schema == second.schema == BINDBEE_SCHEMA


@pytest.mark.parametrize(
    "days",
    [
        [windows("2024-01-01", "2024-01-01")[0], windows("2024-01-03", "2024-01-03")[0]],
        list(reversed(windows("2024-01-01", "2024-01-02"))),
    ],
)
def test_windows_must_be_contiguous_and_sorted(days: list[DayWindow]) -> None:
    with pytest.raises(ValueError, match="contiguous and sorted"):
        sweep_groups(days, 8)


def _empty(start: dt.datetime, end: dt.datetime) -> SweepResult:
    return SweepResult(_table([]), FetchStats(1, 1, 0, 0.0, None))


def test_sweeps_run_concurrently_yield_in_order_and_stay_bounded() -> None:
    sweeps = [[w] for w in windows("2024-01-01", "2024-01-12")]
    running, peak, started = 0, 0, []
    lock = threading.Lock()

    def fetch(start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            started.append(start)
        time.sleep(0.002 * (12 - start.day))  # later sweeps finish first
        with lock:
            running -= 1
        return _empty(start, end)

    consumed = []
    for days, _ in run_sweeps(fetch, sweeps, 3, "acme"):
        consumed.append(days[0].start)
        assert len(started) <= len(consumed) + 3  # never more than 3 sweeps ahead of the consumer
    assert consumed == [s[0].start for s in sweeps]
    assert 1 < peak <= 3


def test_a_failed_sweep_raises_in_order_and_stops_the_others() -> None:
    sweeps = [[w] for w in windows("2024-01-01", "2024-01-06")]
    stopped = []

    def fetch(start: dt.datetime, end: dt.datetime, stop: threading.Event) -> SweepResult:
        if start.day == 2:
            raise RuntimeError("sweep 2 failed")
        if start.day > 2:
            stopped.append(stop.wait(timeout=5))
        return _empty(start, end)

    results = run_sweeps(fetch, sweeps, 4, "acme")
    assert next(results)[0][0].day == dt.date(2024, 1, 1)
    with pytest.raises(RuntimeError, match="sweep 2 failed"):
        next(results)
    assert stopped and all(stopped)  # the sweeps in flight saw the stop signal


# --- request cost over a range, against the sandbox ---


@pytest.fixture(scope="module", params=[3, 600], ids=["sparse", "dense"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with running_sandbox(days=33, records_per_day=request.param) as running:
        yield running


def test_bindbee_range_costs_the_minimum_requests_per_sweep(sandbox: Sandbox) -> None:
    days = windows("2024-01-01", "2024-01-31")
    before = sandbox.stats()["bindbee"]["requests"]
    with bindbee_client(sandbox) as client:
        batches = list(client.fetch_days(days))
    sweeps = [days[i : i + 8] for i in range(0, len(days), 8)]
    records = [len(sandbox.dataset.ground_truth("bindbee", s[0].start, s[-1].end)) for s in sweeps]
    expected = sum(max(1, math.ceil(n / 100)) for n in records)
    made = sum({id(b.stats): b.stats.requests for b in batches}.values())
    assert made == expected == sandbox.stats()["bindbee"]["requests"] - before
    oracle = Oracle(sandbox, "bindbee")
    assert sum(b.table.num_rows for b in batches) == len(oracle.rows_in(days[0].start, days[-1].end))


def test_nexudus_range_costs_the_minimum_requests_per_widened_sweep(sandbox: Sandbox) -> None:
    days = windows("2024-01-01", "2024-01-31")
    before = sandbox.stats()["nexudus"]["requests"]
    with nexudus_client(sandbox) as client:
        batches = list(client.fetch_days(days))
    sweeps = list({id(b.stats): b.stats for b in batches}.values())
    assert len(sweeps) == 4
    expected = sum(max(1, math.ceil((w.total_items or 0) / 100)) for s in sweeps for w in s.windows)
    assert sum(s.requests for s in sweeps) == expected == sandbox.stats()["nexudus"]["requests"] - before
    assert all(w.total_items == w.distinct_fetched for s in sweeps for w in s.windows)
    assert sum(b.table.num_rows for b in batches) == len(
        Oracle(sandbox, "nexudus").rows_in(days[0].start, days[-1].end)
    )


# --- the Dagster resources ---


@pytest.fixture(scope="module")
def small_sandbox() -> Iterator[Sandbox]:
    with running_sandbox(days=10, records_per_day=50) as running:
        yield running


def test_resources_fetch_every_record_of_their_days(small_sandbox: Sandbox) -> None:
    sandbox = small_sandbox
    credentials = sandbox.credentials
    bindbee = BindbeeResource(
        base_url=sandbox.base_url,
        api_key=credentials["BINDBEE_API_KEY"],
        connector_token=credentials["BINDBEE_CONNECTOR_TOKEN"],
        requests_per_minute=0,
    )
    nexudus = NexudusResource(
        base_url=sandbox.base_url,
        access_token=credentials["NEXUDUS_ACCESS_TOKEN"],
        min_interval_ms=0,
        requests_per_minute=0,
        requests_per_hour=0,
    )
    days = windows("2024-01-02", "2024-01-03")
    for resource, provider in ((bindbee, "bindbee"), (nexudus, "nexudus")):
        oracle = Oracle(sandbox, provider)
        batches = list(resource.fetch_days(days))
        assert [b.table.num_rows for b in batches] == [len(oracle.rows_in(d.start, d.end)) for d in days]


def test_secrets_named_in_secret_env_are_read_when_the_client_is_built(small_sandbox, monkeypatch) -> None:
    resource = BindbeeResource(
        base_url=small_sandbox.base_url,
        requests_per_minute=0,
        secret_env={"api_key": "KEY_X", "connector_token": "TOKEN_X"},
    )
    monkeypatch.setenv("KEY_X", small_sandbox.credentials["BINDBEE_API_KEY"])
    with pytest.raises(ConfigurationError, match="environment variable TOKEN_X is not set"):
        resource.create_client()
    monkeypatch.setenv("TOKEN_X", small_sandbox.credentials["BINDBEE_CONNECTOR_TOKEN"])
    assert len(list(resource.fetch_days(windows("2024-01-02", "2024-01-02")))) == 1


def test_resource_defaults_are_the_documented_ones() -> None:
    bindbee = BindbeeResource(api_key="k", connector_token="t")
    nexudus = NexudusResource(access_token="t")
    assert (bindbee.base_url, bindbee.page_size, bindbee.requests_per_minute) == ("https://api.bindbee.dev", 100, 200)
    assert (nexudus.base_url, nexudus.margin_minutes, nexudus.timezone) == (
        "https://spaces.nexudus.com",
        14 * 60 + 1,
        "UTC",
    )
    assert (nexudus.min_interval_ms, nexudus.requests_per_minute, nexudus.requests_per_hour) == (100, 120, 5000)
    assert (bindbee.sweep_days, bindbee.max_concurrent_sweeps, bindbee.max_attempts) == (8, 4, 5)
