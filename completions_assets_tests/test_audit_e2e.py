"""The audit of older days, through the CLI with a real instance: a Nexudus record deleted from a
40-day-old day is gone after one audit that fetched no other day, and a Bindbee correction arrives
once the rotation reaches its day."""

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pytest

from completions_assets.local.launch import REPO, dg_command, materialize_command
from completions_assets.local.run_report import check_results
from completions_assets.sandbox import Sandbox, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import assert_day_matches_ground_truth, expected_bindbee
from completions_assets_tests.support import location_env, source_dir, source_key

pytestmark = pytest.mark.e2e

START = dt.date(2024, 3, 1)
LAST = dt.date(2024, 4, 19)
UTC = dt.timezone.utc
AUDIT_STEPS = ("audit_bindbee_completions", "audit_nexudus_completions")


@dataclass
class Audited:
    sandbox: Sandbox
    env: dict[str, str]
    storage: ParquetStorage

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def queries_since(self, since: int) -> list[dict]:
        reply = httpx.get(f"{self.sandbox.base_url}/_sandbox/queries", params={"since": since}, timeout=10)
        return reply.json()["queries"]

    def next_query(self) -> int:
        return httpx.get(f"{self.sandbox.base_url}/_sandbox/queries", timeout=10).json()["next"]

    def audit(self, audit_date: dt.date, **config: object) -> dg.DagsterRun:
        values = {"audit_date": audit_date.isoformat(), **config}
        run_config = {"ops": {step: {"config": values} for step in AUDIT_STEPS}}
        command = dg_command(
            "launch", "--job", "completions_audit_job", "-m", "completions_assets.definitions",
            "--config-json", json.dumps(run_config),
        )  # fmt: skip
        done = subprocess.run(command, env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return self.instance().get_runs(limit=1)[0]


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Iterator[Audited]:
    """50 days fetched and merged by one CLI run of completions_job."""
    tmp_path: Path = tmp_path_factory.mktemp("audit")
    config = SandboxConfig(seed=31, start_date=START, days=50, records_per_day=20, late_fraction=0)
    with start_sandbox(config) as sb:
        env = location_env(sb.base_url, tmp_path) | {"COMPLETIONS_START_DATE": START.isoformat()}
        done = subprocess.run(
            materialize_command(START.isoformat(), LAST.isoformat()),
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        yield Audited(sb, env, ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"]))


def _materialized(instance: dg.DagsterInstance, run_id: str) -> dict[dg.AssetKey, dict[str, dict]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found: dict[dg.AssetKey, dict[str, dict]] = {}
    for record in records:
        event = record.event_log_entry.asset_materialization
        assert event is not None and event.partition is not None
        found.setdefault(event.asset_key, {})[event.partition] = {k: v.value for k, v in event.metadata.items()}
    return found


def _covers_only(params: dict, day: dt.date) -> bool:
    """Whether a Nexudus request's CreatedOn window lies within the day widened by a fetch's margin."""
    margin = dt.timedelta(hours=14, minutes=2)
    low = dt.datetime.combine(day, dt.time(), tzinfo=UTC) - margin
    high = low + dt.timedelta(days=1) + 2 * margin
    window = [
        dt.datetime.fromisoformat(params[f"{side}_CourseCompletedLesson_CreatedOn"]).replace(tzinfo=UTC)
        for side in ("from", "to")
    ]
    return low <= window[0] and window[1] <= high


def test_a_record_deleted_from_a_40_day_old_nexudus_day_is_gone_after_one_audit(audited):
    audit_date = dt.date(2024, 4, 20)
    day = audit_date - dt.timedelta(days=40)
    sb, storage = audited.sandbox, audited.storage
    stored = storage.read(source_dir("nexudus"), day)
    assert stored is not None and stored.num_rows > 2
    # Late in the day: the widened probe of the day before (reaching 14:01 into this one) does not see
    # it, so no other day is suspected (a deletion earlier in the day also re-reads the day before).
    late = [row for row in stored.to_pylist() if row["created_on"].hour >= 15]
    assert late
    gone = str(late[0]["id"])
    sb.update(delete={"nexudus": [gone]})
    since = audited.next_query()

    run = audited.audit(audit_date)

    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert_day_matches_ground_truth(sb, storage, day.isoformat())
    lms = storage.read("lms_completions", day)
    assert lms is not None and gone not in lms["completion_id"].to_pylist()
    nexudus = [q["params"] for q in audited.queries_since(since) if q["provider"] == "nexudus"]
    fetches = [p for p in nexudus if p.get("size") != "1"]
    assert fetches and all(_covers_only(p, day) for p in fetches), [
        (p["from_CourseCompletedLesson_CreatedOn"], p["to_CourseCompletedLesson_CreatedOn"]) for p in fetches
    ]
    instance = audited.instance()
    written = _materialized(instance, run.run_id)
    assert set(written[source_key("nexudus")]) == {day.isoformat()}
    change = written[source_key("nexudus")][day.isoformat()]
    assert (change["rows_removed"], change["rows_added"], change["rows_changed"]) == (1, 0, 0)
    assert change["removed_ids"] == [gone]
    assert day.isoformat() in written[dg.AssetKey("lms_completions")]
    results = {(e.asset_key, e.check_name, e.partition, e.passed) for e in check_results(instance, run.run_id)}
    assert (source_key("nexudus"), "no_mass_removal", day.isoformat(), True) in results
    assert (dg.AssetKey("lms_completions"), "reconciles_with_sources", day.isoformat(), True) in results


def test_a_bindbee_day_corrected_at_the_source_is_corrected_once_the_rotation_reaches_it(audited):
    # Five requests per audit over 46-47 one-page days: a turn of ten audits, so the day 40 days
    # before the second audit is read by it and not by the audit the day before.
    first, second = dt.date(2024, 4, 20), dt.date(2024, 4, 21)
    day = second - dt.timedelta(days=40)
    share = 5 / (200 * 60 * 24)
    sb, storage = audited.sandbox, audited.storage
    before = storage.read(source_dir("bindbee"), day)
    assert before is not None
    corrected = before["id"][0].as_py()
    sb.update(modify={"bindbee": [corrected]})
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    want = expected_bindbee(sb, start, start + dt.timedelta(days=1))

    since = audited.next_query()
    audited.audit(first, budget_share=share)
    assert storage.read(source_dir("bindbee"), day) == before  # not its turn yet
    bindbee = [q for q in audited.queries_since(since) if q["provider"] == "bindbee"]
    assert 0 < len(bindbee) <= 5

    run = audited.audit(second, budget_share=share)
    after = storage.read(source_dir("bindbee"), day)
    assert after is not None and after.select(list(want[0])).to_pylist() == want
    assert_day_matches_ground_truth(sb, storage, day.isoformat())
    change = _materialized(audited.instance(), run.run_id)[source_key("bindbee")][day.isoformat()]
    assert (change["rows_changed"], change["rows_added"], change["rows_removed"]) == (1, 0, 0)
    assert change["changed_ids"] == [corrected]
    lms = storage.read("lms_completions", day)
    assert lms is not None
    row = [r for r in lms.to_pylist() if r["completion_id"] == corrected]
    assert [r["grade"] for r in row] == [next(w["grade"] for w in want if w["id"] == corrected)]
