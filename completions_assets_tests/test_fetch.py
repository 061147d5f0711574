"""Range fetching: day splitting, windows walked in order with bounded concurrency, request cost, resources."""

import contextlib
import datetime as dt
import itertools
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from completions_assets.http.errors import ProviderError
from completions_assets.partitions import PartitionDay
from completions_assets.providers.bindbee import BINDBEE_SCHEMA
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.planning import RecordBudget, Window, WindowPlanner, WindowTicket
from completions_assets.providers.ranges import (
    DayAssembler,
    DayBatch,
    FetchStats,
    WindowReport,
    WindowResult,
    check_contiguous,
    walk_windows,
)
from completions_assets.providers.resource import BindbeeResource, NexudusResource
from completions_assets.providers.spill import SpilledRows, WindowRows
from completions_assets.sandbox import ProviderFaults, Sandbox
from completions_assets.settings import ConfigurationError
from completions_assets_tests.clients_support import (
    Oracle,
    bindbee_client,
    days_between,
    nexudus_client,
    running_sandbox,
    update_faults,
)

pytestmark = pytest.mark.integration

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


NO_ROWS = SpilledRows(None, 0, BINDBEE_SCHEMA)


def _spilled(table: pa.Table, span: Window, directory: Path) -> SpilledRows:
    path = directory / f"{span.start:%Y%m%dT%H}.arrow"
    with WindowRows(
        path, span, BINDBEE_SCHEMA, id_column="id", event_column="completed_at", give=lambda n: None
    ) as rows:
        rows.add(table)
    return rows.spilled()


def test_days_are_cut_half_open_and_sorted_by_time_then_id(tmp_path: Path) -> None:
    rows = [
        ("z", JAN_2),
        ("c", JAN_2 - MICRO),
        ("a", JAN_2 - dt.timedelta(days=1)),
        ("b", JAN_2 - MICRO),
        ("early", JAN_2 - dt.timedelta(days=2)),  # before the first day: never in a day
        ("late", JAN_2 + dt.timedelta(days=1)),
        ("c", JAN_2 - MICRO),
    ]
    days = DayAssembler(days_between("2024-01-01", "2024-01-03"), "completed_at", "id")
    stats = FetchStats(0, 0, 0, 0.0, None)
    # The first window ends an hour into the third day: it completes two days and keeps "late".
    span = Window(JAN_2 - dt.timedelta(days=1), JAN_2 + dt.timedelta(days=1, hours=1))
    first, second = days.add(span, _spilled(_table(rows), span, tmp_path), stats)
    assert first.table["id"].to_pylist() == ["a", "b", "c", "c"]  # duplicates as served
    assert second.table["id"].to_pylist() == ["z"]  # exactly at midnight: the next day only
    assert first.table.schema == second.table.schema == BINDBEE_SCHEMA
    (third,) = days.add(Window(JAN_2 + dt.timedelta(days=1, hours=1), JAN_2 + dt.timedelta(days=2)), NO_ROWS, stats)
    assert third.table["id"].to_pylist() == ["late"]  # after the last complete day: left for the next window
    assert list(tmp_path.iterdir()) == []  # every window's file is gone once its days are handed on


@pytest.mark.parametrize(
    "days",
    [
        [days_between("2024-01-01", "2024-01-01")[0], days_between("2024-01-03", "2024-01-03")[0]],
        list(reversed(days_between("2024-01-01", "2024-01-02"))),
    ],
)
def test_days_must_be_contiguous_and_sorted(days: list[PartitionDay]) -> None:
    with pytest.raises(ValueError, match="contiguous and sorted"):
        check_contiguous(days)


# --- planning windows by records, and the record budget ---

START = dt.datetime(2024, 1, 1, tzinfo=UTC)
DAY = dt.timedelta(days=1)


def _planner(days: int = 30, **options: Any) -> WindowPlanner:
    settings: dict[str, Any] = {"target_records": 10_000, "max_length": 8 * DAY} | options
    return WindowPlanner(START, START + days * DAY, **settings)


def test_a_window_holds_about_its_target_at_the_density_seen() -> None:
    planner = _planner()
    first = planner.next()
    assert first == Window(START, START + DAY)  # nothing known yet
    planner.observe(40_000, DAY.total_seconds())  # dense: 40,000 a day
    dense = planner.next()
    assert dense is not None and dense.end - dense.start == dt.timedelta(hours=6)
    planner.observe(0, 29 * DAY.total_seconds())  # the average drops to 1,333 a day
    sparse = planner.next()
    assert sparse is not None and sparse.end - sparse.start == 7 * DAY + dt.timedelta(hours=12)


def test_windows_tile_the_range_without_a_sliver_at_the_end() -> None:
    planner = _planner(days=2, first_length=dt.timedelta(hours=47, minutes=50))
    spans = [planner.next(), planner.next()]
    assert spans == [Window(START, START + 2 * DAY), None]


def _empty(span: Window, turn: WindowTicket) -> WindowResult:
    turn.planner.observe(0, span.seconds)
    return WindowResult(NO_ROWS, FetchStats(1, 1, 0, 0.0, None))


def _daily(days: int) -> WindowPlanner:
    return _planner(days=days, max_length=DAY)


def test_windows_run_concurrently_yield_in_order_and_stay_bounded() -> None:
    running, peak, started = 0, 0, []
    lock = threading.Lock()
    second_done = threading.Event()

    def fetch(span: Window, turn: WindowTicket) -> WindowResult:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            started.append(span.start)
        if span.start.day == 1:  # the first two windows start together; the second finishes first
            second_done.wait(timeout=5)
        with lock:
            running -= 1
        if span.start.day == 2:
            second_done.set()
        return _empty(span, turn)

    consumed = []
    for span, _ in walk_windows(fetch, _daily(12), RecordBudget(10**9), 3, "acme"):
        consumed.append(span.start)
        assert len(started) <= len(consumed) + 3  # never more than 3 windows ahead of the consumer
    assert consumed == [START + i * DAY for i in range(12)]
    assert 1 < peak <= 3


def test_a_failed_window_raises_in_order_and_stops_the_others() -> None:
    stopped = []
    failed = threading.Event()

    def fetch(span: Window, turn: WindowTicket) -> WindowResult:
        if span.start.day == 2:
            failed.set()
            raise RuntimeError("window 2 failed")
        if span.start.day > 2:
            stopped.append(turn.stop.wait(timeout=5))
        elif span.start.day == 1:
            failed.wait(timeout=5)  # window 2 fails first; the walks after 1 start once it has shown the density
        return _empty(span, turn)

    results = walk_windows(fetch, _daily(6), RecordBudget(10**9), 4, "acme")
    assert next(results)[0].start == START
    with pytest.raises(RuntimeError, match="window 2 failed"):
        next(results)
    assert stopped and all(stopped)  # the walks in flight saw the stop signal


def test_the_budget_holds_back_all_but_the_earliest_window() -> None:
    budget, stop = RecordBudget(100), threading.Event()
    budget.take(100, 0, stop)
    budget.take(50, 0, stop)  # the earliest window always proceeds
    waiting = threading.Thread(target=budget.take, args=(10, 1, stop))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and budget.held == 150
    budget.give(60)  # room again
    waiting.join(5)
    assert not waiting.is_alive() and budget.held == 100 and budget.peak == 150


def test_the_next_window_waits_for_the_budget_while_the_last_ones_days_are_written() -> None:
    budget = RecordBudget(100)
    first_took, second_took = threading.Event(), threading.Event()

    def fetch(span: Window, turn: WindowTicket) -> WindowResult:
        if turn.index == 1:
            assert first_took.wait(5)
        turn.take(100)  # each window fills the budget by itself
        (first_took if turn.index == 0 else second_took).set()
        turn.planner.observe(100, span.seconds)
        return WindowResult(NO_ROWS, FetchStats(1, 1, 0, 0.0, None))

    with contextlib.closing(walk_windows(fetch, _daily(3), budget, 2, "acme")) as results:
        next(results)  # window 0 is handed on; its days are being written
        assert not second_took.wait(0.2), "window 1 passed the budget while window 0's days were held"
        budget.give(60)  # some of window 0's days are written: not room enough for window 1's page
        assert not second_took.wait(0.2)
        # The caller asks for the next window, holding only what window 0 left for it: window 1 is
        # now the earliest and proceeds past the budget, so a range always finishes.
        assert next(results)[0].start == START + DAY and second_took.is_set()
        assert next(results)[0].start == START + 2 * DAY
    assert budget.peak == 240


# --- request cost, concurrency and memory over a range, against the sandbox ---


@pytest.fixture(scope="module", params=[3, 600], ids=["sparse", "dense"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with running_sandbox(days=33, records_per_day=request.param) as running:
        yield running


def _windows_of(batches: list[DayBatch]) -> list[WindowReport]:
    """Each request window once, in range order (a window covering several days is in each one's stats)."""
    unique = {(w.request_from, w.request_to): w for b in batches for w in b.stats.windows}
    return [unique[key] for key in sorted(unique)]


def test_bindbee_range_costs_the_minimum_requests_per_window(sandbox: Sandbox) -> None:
    days = days_between("2024-01-01", "2024-01-31")
    before = sandbox.stats()["bindbee"]["requests"]
    with bindbee_client(sandbox, window_records=300) as client:
        batches = list(client.fetch_days(days))
    reports = _windows_of(batches)
    spans = [(dt.datetime.fromisoformat(w.request_from), dt.datetime.fromisoformat(w.request_to)) for w in reports]
    assert spans[0][0] == days[0].start and spans[-1][1] == days[-1].end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # the windows tile the range
    records = [len(sandbox.dataset.ground_truth("bindbee", start, end)) for start, end in spans]
    expected = sum(max(1, math.ceil(n / 100)) for n in records)
    assert sum(w.requests for w in reports) == expected == sandbox.stats()["bindbee"]["requests"] - before
    oracle = Oracle(sandbox, "bindbee")
    assert sum(b.table.num_rows for b in batches) == len(oracle.rows_in(days[0].start, days[-1].end))
    if sum(records) > 31 * 100:  # dense (600 a day): after the first guesses, windows of about 300 records
        assert len(spans) > 31 * 600 / 300 / 2 and max(records[2:]) < 2 * 300
    else:  # sparse: two first-guess days, then 8-day windows once the density is known
        assert len(spans) <= 2 + math.ceil(29 / 8)


def test_nexudus_range_costs_the_minimum_requests_per_widened_window(sandbox: Sandbox) -> None:
    days = days_between("2024-01-01", "2024-01-31")
    before = sandbox.stats()["nexudus"]["requests"]
    with nexudus_client(sandbox) as client:
        batches = list(client.fetch_days(days))
    reports = _windows_of(batches)
    expected = sum(max(1, math.ceil((w.total_items or 0) / 100)) for w in reports)
    assert sum(w.requests for w in reports) == expected == sandbox.stats()["nexudus"]["requests"] - before
    assert all(w.total_items == w.distinct_fetched for w in reports)
    assert sum(b.table.num_rows for b in batches) == len(
        Oracle(sandbox, "nexudus").rows_in(days[0].start, days[-1].end)
    )


def test_a_nexudus_first_window_found_too_large_is_cut_up_for_one_request() -> None:
    days = days_between("2024-01-02", "2024-01-11")
    with running_sandbox(days=12, records_per_day=600) as sandbox:
        before = sandbox.stats()["nexudus"]["requests"]
        # The first window is 8 days: page 1 reports about 4,800 records inside it against a target of 1,000.
        with nexudus_client(sandbox, window_records=1_000) as client:
            batches = list(client.fetch_days(days))
        made = sandbox.stats()["nexudus"]["requests"] - before
        oracle = Oracle(sandbox, "nexudus")
        assert [b.table.to_pylist() for b in batches] == [oracle.rows_in(d.start, d.end) for d in days]
    reports = _windows_of(batches)
    # Windows of about 1,000 records inside (1.7 days), each with 28 h 2 min of margin (700 records).
    assert len(reports) >= 5 and max(w.total_items or 0 for w in reports) < 1_000 * 1.5 + 700
    assert made == sum(max(1, math.ceil((w.total_items or 0) / 100)) for w in reports) + 1  # + the first page


def _overlapping(requests: list[Any]) -> int:
    """The most requests the sandbox was answering at once."""
    edges = sorted([(r.arrived, 1) for r in requests] + [(r.answered, -1) for r in requests])
    return max(itertools.accumulate(step for _, step in edges))


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_a_dense_range_is_fetched_concurrently(provider: str) -> None:
    with running_sandbox(days=6, records_per_day=600) as sandbox:
        # Each answer takes 150 ms, so requests sent together overlap at the sandbox even when a busy
        # machine staggers their sends.
        update_faults(sandbox, {provider: ProviderFaults(latency_ms=150)})
        # Bindbee: windows of about 100 records once the first two days show the density, 4 at a time;
        # Nexudus: one window, its pages 4 at a time. The budget never holds a window back: with less
        # than a day's records, the earliest window walked alone and 4 at once was down to timing.
        make: Callable[..., ProviderClient] = bindbee_client if provider == "bindbee" else nexudus_client
        options = {"window_records": 100} if provider == "bindbee" else {}
        with make(sandbox, max_records_in_flight=10_000, max_concurrent_requests=4, **options) as client:
            days = days_between("2024-01-02", "2024-01-05")
            batches = list(client.fetch_days(days))
        oracle = Oracle(sandbox, provider)
        assert [b.table.to_pylist() for b in batches] == [oracle.rows_in(d.start, d.end) for d in days]
        logged = [r for r in sandbox.request_log() if r.bucket == provider]
        assert _overlapping(logged) == 4


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_records_in_flight_stay_within_the_budget(provider: str) -> None:
    # Bindbee: 16 small windows at once; Nexudus: long windows (narrow margins, so they can be shorter).
    make: Callable[..., ProviderClient] = bindbee_client if provider == "bindbee" else nexudus_client
    options = {"window_records": 300} if provider == "bindbee" else {"window_records": 10_000, "margin_minutes": 60}
    days = days_between("2024-01-02", "2024-01-11")
    with running_sandbox(days=12, records_per_day=600) as sandbox:
        peaks, largest = {}, {}
        for limit in (1_000, 10**9):  # the control shows the budget is what holds the peak down
            with make(sandbox, max_records_in_flight=limit, max_concurrent_requests=16, **options) as client:
                batches = list(client.fetch_days(days))
                peaks[limit] = client.budget.peak
            largest[limit] = max(w.total_items or w.distinct_fetched for w in _windows_of(batches))
            oracle = Oracle(sandbox, provider)
            assert [b.table.to_pylist() for b in batches] == [oracle.rows_in(d.start, d.end) for d in days]
    # The earliest window always proceeds, so the limit can be passed by its pages (one window, sized
    # to fit the budget from a density estimate) and by the day being read back from disk (that
    # window and what is left of its day, 600 a day), plus slack: room is taken for whole pages.
    # Never by the windows behind it.
    slack = 3 * 100
    assert largest[1_000] < 2 * 1_000
    assert peaks[1_000] <= 1_000 + 2 * largest[1_000] + 600 + slack, peaks
    assert peaks[1_000] < peaks[10**9], peaks


@pytest.mark.parametrize("provider", ["bindbee", "nexudus"])
def test_a_ranges_window_files_are_gone_once_it_ends_or_fails_or_its_process_died(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the client's window files go
    # What a process killed before it could remove its window files left behind.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f"completions-{provider}-{int(gone.stdout)}-x1y2z3"
    leftover.mkdir()
    (leftover / "0-20240102T000000.arrow").write_bytes(b"left behind")
    make: Callable[..., ProviderClient] = bindbee_client if provider == "bindbee" else nexudus_client
    days = days_between("2024-01-02", "2024-01-05")
    with running_sandbox(days=6, records_per_day=600) as sandbox:
        oracle = Oracle(sandbox, provider)
        with make(sandbox, window_records=500, max_window_days=1) as client:
            batches = client.fetch_days(days)
            first = next(batches)
            during = [path.name for path in tmp_path.iterdir()]
            rest = list(batches)
        assert [name.startswith(f"completions-{provider}-{os.getpid()}-") for name in during] == [True]
        assert [b.table.to_pylist() for b in [first, *rest]] == [oracle.rows_in(d.start, d.end) for d in days]
        assert list(tmp_path.iterdir()) == []
        # A request refused for good part-way: the range fails, and its files go with it.
        update_faults(sandbox, {provider: ProviderFaults(fail_status=400, fail_on=4)})
        with make(sandbox, window_records=500, max_window_days=1) as client, pytest.raises(ProviderError):
            list(client.fetch_days(days))
        assert list(tmp_path.iterdir()) == []


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
    days = days_between("2024-01-02", "2024-01-03")
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
    assert len(list(resource.fetch_days(days_between("2024-01-02", "2024-01-02")))) == 1


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (BindbeeResource(connector_token="t"), "bindbee: set api_key and connector_token"),
        (NexudusResource(username="u"), "nexudus: set access_token, or username and password"),
        (NexudusResource(password="p"), "nexudus: set access_token, or username and password"),
    ],
)
def test_a_client_without_a_whole_credential_set_is_refused_before_any_request(resource, message) -> None:
    with pytest.raises(ConfigurationError, match=f"^{message}$"):
        resource.create_client(transport=httpx.MockTransport(lambda request: pytest.fail("no request expected")))


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
    assert (bindbee.max_window_days, bindbee.max_concurrent_requests, bindbee.max_attempts) == (8, 8, 5)


def test_the_clients_and_the_provider_declarations_import_no_dagster() -> None:
    # Imports run http <- provider data <- client <- resource: only resource.py meets Dagster.
    code = (
        "import sys, completions_assets.providers.client, completions_assets.providers.nexudus.audit, "
        "completions_assets.providers.nexudus.members; print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]"
