"""Every sandbox fault knob, on each provider, in a 5-day range run through Dagster.

Recoverable faults end in exact data. Unrecoverable ones fail the run with a message
naming the provider and the cause, and leave every file committed before the run
byte for byte as it was (the failing provider's and the merged files not even rewritten).
"""

import datetime as dt
import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from completions_assets.local.run_report import check_results
from completions_assets.sandbox import ProviderFaults as F
from completions_assets.sandbox import Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS
from completions_assets.storage import ParquetStorage
from completions_assets_tests.clients_support import update_faults
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.support import materialize_range, resources, source_dir, source_key

pytestmark = pytest.mark.e2e

CONFIG = SandboxConfig(seed=41, start_date=dt.date(2024, 3, 1), days=8, records_per_day=60)
FIRST, LAST = "2024-03-02", "2024-03-06"
DAYS = [(dt.date(2024, 3, 2) + dt.timedelta(days=i)).isoformat() for i in range(5)]
NO_WAIT = {"backoff_initial_s": 0.0}
# Small pages so every window has several (Bindbee 3 a day, Nexudus about 3 for the first day),
# one request at a time so that "the Nth request" is a known page of the first window.
# Pacing off: this module makes far more than Bindbee's 200 requests a minute, and a paced client
# would rightly wait for the budget the sandbox reports (pacing has its own case below).
FAST = {
    "bindbee": {**NO_WAIT, "page_size": 25, "requests_per_minute": 0, "max_concurrent_requests": 1},
    "nexudus": {**NO_WAIT, "page_size": 50, "min_interval_ms": 0, "max_concurrent_requests": 1},
}
STEPS = {"bindbee": "bindbee_completions", "nexudus": "nexudus_completions"}


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with start_sandbox(CONFIG) as running:
        yield running


def run(
    sb: Sandbox, root: Path, faults: dict[str, F] | None = None, overrides: dict | None = None, zone: str = "UTC"
) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    # A Retry-After of 0 keeps the retry path without the wait (a longer one is honoured in full).
    update_faults(sb, {p: replace(f, retry_after="0") if f.retry_after else f for p, f in (faults or {}).items()})
    try:
        instance = dg.DagsterInstance.ephemeral()
        res = resources(sb.base_url, str(root), zone, **(overrides or FAST))
        return materialize_range(FIRST, LAST, res, instance, zone=zone), instance
    finally:
        sb.update(bindbee=F(), nexudus=F())


def assert_exact(sb: Sandbox, root: Path, zone: str = "UTC") -> None:
    storage = ParquetStorage(root=str(root))
    for day in DAYS:
        assert_day_matches_ground_truth(sb, storage, day, zone)
    assert not list(root.rglob("_tmp-*"))


def latest(instance: dg.DagsterInstance, asset: dg.AssetKey, day: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[day]), limit=1
    ).records
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {key: value.value for key, value in materialization.metadata.items()}


def files(root: Path) -> dict[str, tuple[str, int]]:
    """Every Parquet file: its hash and inode (a replaced file gets a new inode)."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
        for p in sorted(root.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def committed(sb: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The range as a clean run left it: what failing runs must not disturb."""
    root = tmp_path_factory.mktemp("committed")
    result, _ = run(sb, root)
    assert result.success
    assert_exact(sb, root)
    return root


def test_records_stamped_exactly_at_midnight_land_in_the_day_they_open(sb, committed):
    storage = ParquetStorage(root=str(committed))
    at_midnight = 0
    for day in DAYS:
        table = storage.read(source_dir("bindbee"), dt.date.fromisoformat(day))
        midnight = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        at_midnight += table["completed_at"].to_pylist().count(midnight)
    assert at_midnight >= 2  # the sandbox stamps two records of every non-empty day at 00:00:00.000


RECOVERED: list[tuple[str, F]] = [
    (provider, knobs)
    for provider in ("bindbee", "nexudus")
    for knobs in (
        F(latency_ms=30),
        F(fail_status=503, fail_on=2),
        F(fail_status=500, fail_every=3),
        F(fail_status=502, fail_on=3),  # an nginx HTML page
        F(fail_status=408, fail_on=1),
        F(fail_status=429 if provider == "bindbee" else 409, fail_on=2),  # Nexudus throttles with 409
        F(disconnect_on=2),
        F(html_on=2, html_status=503),
    )
] + [
    ("nexudus", F(fail_status=401, fail_on=2)),  # an expired token: refreshed once, then the page again
    ("nexudus", F(duplicate_on=2)),  # offset paging served a record twice
]


def knob_id(case: tuple) -> str:
    knobs = {k: v for k, v in vars(case[1]).items() if v != getattr(F(), k)}
    return f"{case[0]}-" + "-".join(f"{k}={v}" for k, v in knobs.items())


@pytest.mark.parametrize(("provider", "knobs"), RECOVERED, ids=[knob_id(c) for c in RECOVERED])
def test_recoverable_fault_gives_exact_data(sb, tmp_path, provider, knobs):
    tokens_before = sb.stats()["token"]["requests"]
    result, instance = run(sb, tmp_path, {provider: knobs})
    assert result.success
    assert_exact(sb, tmp_path)
    retries = latest(instance, source_key(provider), FIRST)["retries"]
    if knobs.fail_status == 401:
        assert sb.stats()["token"]["requests"] - tokens_before >= 2  # the token was fetched again
    elif knobs.fail_status or knobs.disconnect_on or knobs.html_on:
        assert retries >= 1
    else:
        assert retries == 0


FAILED: list[tuple[str, F, str, dict]] = [
    ("bindbee", F(truncate_on=2), r"page 2 \(GET .*\): HTTP 200 body is not JSON", {}),
    ("bindbee", F(html_on=2), r"page 2 \(GET .*\): HTTP 200 body is not JSON \(Content-Type text/html\): <html>", {}),
    ("bindbee", F(repeat_cursor=True), r"page 2 \(GET .*cursor .* was already followed", {}),
    ("bindbee", F(fail_status=401), r"HTTP 401 Unauthorized for GET ", {}),
    ("bindbee", F(fail_status=403, fail_on=1), r"HTTP 403 Forbidden", {}),
    ("bindbee", F(fail_status=422, fail_on=2), r"HTTP 422 Unprocessable", {}),
    ("bindbee", F(fail_status=503), r"HTTP 503 Service Unavailable", {}),  # retries exhausted
    ("bindbee", F(latency_ms=400), r"GET .* timed out", {"read_timeout_s": 0.1, "max_attempts": 2}),
    ("nexudus", F(truncate_on=2), r"page 2 \(GET .*\): HTTP 200 body is not JSON", {}),
    ("nexudus", F(html_on=2), r"page 2 \(GET .*\): HTTP 200 body is not JSON \(Content-Type text/html\): <html>", {}),
    ("nexudus", F(repeat_cursor=True), r"page 2 \(GET .*asked for page 2, got CurrentPage 1", {}),
    ("nexudus", F(fail_status=401), r"HTTP 401 Unauthorized", {}),
    ("nexudus", F(fail_status=404, fail_on=2), r"HTTP 404 Not Found", {}),
    ("nexudus", F(fail_status=409), r"HTTP 409 Conflict", {}),  # throttled on every attempt
    ("nexudus", F(unsuccessful_on=2), r"page 2 \(GET .*WasSuccessful is false: The request could not be completed", {}),
    ("nexudus", F(latency_ms=400), r"GET .* timed out", {"read_timeout_s": 0.1, "max_attempts": 2}),
]


@pytest.mark.parametrize(("provider", "knobs", "cause", "settings"), FAILED, ids=[knob_id(c) for c in FAILED])
def test_unrecoverable_fault_fails_clearly_and_leaves_committed_files_unchanged(
    sb, committed, tmp_path, provider, knobs, cause, settings
):
    root = tmp_path / "data"
    shutil.copytree(committed, root)
    before = files(root)
    overrides = {**FAST, provider: {**FAST[provider], **settings}}
    result, instance = run(sb, root, {provider: knobs}, overrides)

    assert not result.success
    failures = {
        e.step_key: e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }
    assert set(failures) == {STEPS[provider]}
    message = failures[STEPS[provider]]
    assert re.search(f"{provider}: (?:.*){cause}", message), message
    assert not any(secret in message for secret in DEFAULT_CREDENTIALS.values())

    after = files(root)
    assert {path: digest for path, (digest, _) in after.items()} == {
        path: digest for path, (digest, _) in before.items()
    }
    # The other provider's days and the enrolment snapshot are fetched again (the same bytes).
    refreshed = (source_dir("nexudus" if provider == "bindbee" else "bindbee"), "nexudus_course_members")
    untouched = [path for path in before if not path.startswith(refreshed)]
    assert all(after[path][1] == before[path][1] for path in untouched)  # not even rewritten
    assert not instance.get_materialized_partitions(source_key(provider))
    assert not instance.get_materialized_partitions(dg.AssetKey("lms_completions"))
    assert not list(root.rglob("_tmp-*"))


def test_duplicated_bindbee_record_fails_its_check_and_is_merged_once(sb, committed, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(committed, root)
    result, instance = run(sb, root, {"bindbee": F(duplicate_on=2)})
    assert result.success  # a provider's checks do not block: its step serves every connection
    failed = [e for e in check_results(instance, result.run_id) if not e.passed]
    assert [(e.check_name, e.asset_key) for e in failed] == [("no_duplicate_ids", source_key("bindbee"))]
    assert failed[0].metadata["example_ids"].value
    # The merge keeps one copy: unique_completion_ids and reconciles_with_sources passed.
    assert instance.get_materialized_partitions(dg.AssetKey("lms_completions"))


def fresh_sandbox_case(name: str) -> tuple[SandboxConfig, dict, str]:
    """A knob of the whole sandbox (not one provider): its config, resource overrides and zone."""
    paced = {"bindbee": NO_WAIT, "nexudus": NO_WAIT}  # the clients' own pacing on
    if name == "rate_limits":
        return SandboxConfig(**{**vars(CONFIG), "rate_limits": True}), paced, "UTC"
    if name == "naive_timestamps_in_the_business_zone":
        return (
            SandboxConfig(**{**vars(CONFIG), "nexudus_naive_timestamps": True, "nexudus_filter_tz": "Europe/Berlin"}),
            FAST,
            "Europe/Berlin",
        )
    if name == "tokens_expire_mid_walk":
        slow = {**FAST, "nexudus": {**FAST["nexudus"], "page_size": 20}}
        return SandboxConfig(**{**vars(CONFIG), "token_lifetime_s": 0.15, "nexudus": F(latency_ms=40)}), slow, "UTC"
    if name == "late_records_not_yet_visible":
        now = dt.datetime(2024, 3, 7, 6, tzinfo=dt.timezone.utc)
        return SandboxConfig(**{**vars(CONFIG), "late_fraction": 0.3, "now": now}), FAST, "UTC"
    raise ValueError(name)


@pytest.mark.parametrize(
    "name",
    ["rate_limits", "naive_timestamps_in_the_business_zone", "tokens_expire_mid_walk", "late_records_not_yet_visible"],
)
def test_sandbox_wide_knob_gives_exact_data(tmp_path, name):
    config, overrides, zone = fresh_sandbox_case(name)
    with start_sandbox(config) as fresh:
        result, _ = run(fresh, tmp_path / "data", overrides=overrides, zone=zone)
        assert result.success
        stats = fresh.stats()
        hidden = _hidden_records(fresh, zone)
        if not config.nexudus_naive_timestamps:
            assert_exact(fresh, tmp_path / "data", zone)
    if config.nexudus_naive_timestamps:
        # The oracle reads offset-less times in the machine's zone: compare with a twin
        # sandbox serving the same records with offsets instead, file for file.
        with start_sandbox(SandboxConfig(**{**vars(config), "nexudus_naive_timestamps": False})) as twin:
            assert run(twin, tmp_path / "twin", overrides=overrides, zone=zone)[0].success
            assert_exact(twin, tmp_path / "twin", zone)
        assert {k: v for k, (v, _) in files(tmp_path / "data").items()} == {
            k: v for k, (v, _) in files(tmp_path / "twin").items()
        }
    if name == "rate_limits":  # paced under the limits instead of bumping into them
        assert set(stats["bindbee"]["statuses"]) == {"200"} and set(stats["nexudus"]["statuses"]) == {"200"}
    if name == "tokens_expire_mid_walk":
        assert stats["nexudus"]["statuses"].get("401", 0) >= 1 and stats["token"]["requests"] >= 2
    if name == "late_records_not_yet_visible":
        assert hidden > 0  # ground truth (what is visible now) really left some out


def _hidden_records(sb: Sandbox, zone: str) -> int:
    start = dt.datetime.fromisoformat(FIRST).replace(tzinfo=ZoneInfo(zone))
    end = dt.datetime.fromisoformat(LAST).replace(tzinfo=ZoneInfo(zone)) + dt.timedelta(days=1)
    table = sb.dataset.tables["bindbee"]
    in_range = table.event_positions(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    return len(in_range) - len(sb.dataset.ground_truth("bindbee", start, end))
