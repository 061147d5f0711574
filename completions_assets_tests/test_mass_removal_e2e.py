"""The guard against mass removal, through the CLI with a real instance: a connector that suddenly
serves empty days leaves every stored file byte for byte and fails `no_mass_removal` for each of
them, until a run with the override (run config, or the run tag) applies the removal."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.local.run_report import check_results
from completions_assets.sandbox import ProviderFaults, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import expected_bindbee
from completions_assets_tests.support import location_env, source_dir, source_key

pytestmark = pytest.mark.e2e

START = dt.date(2024, 3, 1)
DAYS = [START + dt.timedelta(days=n) for n in range(10)]
FIRST, LAST = DAYS[0].isoformat(), DAYS[-1].isoformat()
UTC = dt.timezone.utc


def _run(command: list[str], env: dict[str, str], *, succeeds: bool = True) -> dg.DagsterRun:
    """The run of `command`. A run that keeps a day's file fails (after the merge) naming the connection:
    its latest attempt at the day did not land, as all_connections_present also says."""
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert (done.returncode == 0) == succeeds, done.stderr[-3000:]
    if not succeeds:
        assert "merged without bindbee:default" in done.stderr
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs(limit=1)[0]


def _removal_results(env: dict[str, str], run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    return {
        e.partition: e
        for e in check_results(instance, run_id)
        if e.check_name == "no_mass_removal" and e.asset_key == source_key("bindbee") and e.partition
    }


def _file_bytes(storage: ParquetStorage) -> dict[dt.date, bytes]:
    return {day: Path(storage.path(source_dir("bindbee"), day)).read_bytes() for day in DAYS}


def test_an_empty_month_keeps_every_file_and_fails_no_mass_removal_until_an_override(tmp_path):
    config = SandboxConfig(seed=41, start_date=START, days=12, records_per_day=20, late_fraction=0)
    with start_sandbox(config) as sb:
        env = location_env(sb.base_url, tmp_path) | {"COMPLETIONS_START_DATE": START.isoformat()}
        storage = ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"])
        assert _run(materialize_command(FIRST, LAST), env).status == dg.DagsterRunStatus.SUCCESS
        before = _file_bytes(storage)
        stored = {day: storage.read(source_dir("bindbee"), day) for day in DAYS}
        filled = [day for day in DAYS if stored[day] is not None and stored[day].num_rows]
        assert len(filled) >= 5

        sb.update(bindbee=ProviderFaults(withhold_days=tuple(day.isoformat() for day in DAYS)))
        refused = _run(materialize_command(FIRST, LAST), env, succeeds=False)
        assert _file_bytes(storage) == before
        results = _removal_results(env, refused.run_id)
        assert {day for day, e in results.items() if not e.passed} == {day.isoformat() for day in filled}
        for day in filled:
            metadata = {k: v.value for k, v in results[day.isoformat()].metadata.items()}
            rows = stored[day].num_rows
            assert (metadata["previous_rows"], metadata["fetched_rows"], metadata["rows_removed"]) == (rows, 0, rows)
            assert metadata["removed_ids"] == sorted(stored[day]["id"].to_pylist())[:5]
            lms = storage.read("lms_completions", day)
            bindbee_rows = [r for r in lms.to_pylist() if r["provider"] == "bindbee"]
            assert len(bindbee_rows) == rows  # the merge still holds the kept day

        override = {"ops": {"bindbee_completions": {"config": {"allow_removals": True}}}}
        applied = _run(materialize_command(FIRST, LAST, "--config-json", json.dumps(override)), env)
        results = _removal_results(env, applied.run_id)
        assert all(e.passed for e in results.values())
        assert results[filled[0].isoformat()].metadata["removals_applied_by"].value == "run config"
        for day in DAYS:
            assert storage.read(source_dir("bindbee"), day).num_rows == 0
            lms = storage.read("lms_completions", day)
            assert "bindbee" not in lms["provider"].to_pylist()


def test_a_partial_day_is_refused_and_the_run_tag_applies_it(tmp_path):
    config = SandboxConfig(seed=42, start_date=START, days=4, records_per_day=40, late_fraction=0)
    day = dt.date(2024, 3, 2)
    with start_sandbox(config) as sb:
        env = location_env(sb.base_url, tmp_path) | {"COMPLETIONS_START_DATE": START.isoformat()}
        storage = ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"])
        assert _run(materialize_command(day.isoformat(), day.isoformat()), env).status == dg.DagsterRunStatus.SUCCESS
        path = Path(storage.path(source_dir("bindbee"), day))
        before = path.read_bytes()
        sb.update(bindbee=ProviderFaults(withhold_days=(day.isoformat(),), withhold_share=0.5))
        refused = _run(materialize_command(day.isoformat(), day.isoformat()), env, succeeds=False)
        assert path.read_bytes() == before
        assert not _removal_results(env, refused.run_id)[day.isoformat()].passed

        tags = {
            "dagster/asset_partition_range_start": day.isoformat(),
            "dagster/asset_partition_range_end": day.isoformat(),
            "completions/allow_removals": "true",
        }
        command = [
            str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "completions_assets.definitions",
            "-j", "completions_job", "--tags", json.dumps(tags),
        ]  # fmt: skip
        applied = _run(command, env)
        result = _removal_results(env, applied.run_id)[day.isoformat()]
        assert result.passed and result.metadata["removals_applied_by"].value == "run tag"
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        served = {r["id"] for r in expected_bindbee(sb, start, start + dt.timedelta(days=1))}
        kept = set(storage.read(source_dir("bindbee"), day)["id"].to_pylist())
        assert kept < served and len(kept) < 0.8 * len(served)
