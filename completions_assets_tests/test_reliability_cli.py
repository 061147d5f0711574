"""The code location driven as operators drive it, `dagster asset materialize` on a
DAGSTER_HOME with the local instance configuration (completions_assets/local/dagster.yaml),
when things go wrong around the run: its process is killed with SIGKILL mid-run, two
runs of the same days overlap, or the configuration is bad."""

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as ds
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.local.run_report import check_results
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets.turns import LOCK_DIR_VARIABLE
from completions_assets_tests.oracle import (
    assert_day_matches_ground_truth,
    day_bounds_utc,
    expected_bindbee,
    expected_nexudus,
    file_rows,
)
from completions_assets_tests.support import location_env, overlaps, source_dir

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-02", "2024-03-06"
DAYS = [(dt.date(2024, 3, 2) + dt.timedelta(days=i)).isoformat() for i in range(5)]
ASSETS = ("bindbee_completions", "nexudus_completions", "lms_completions")
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}  # one process: SIGKILL leaves no orphan step
# The README's way to free the pool slots of a run whose process died (run with DAGSTER_HOME set).
FREE_SLOTS_RECIPE = """
import sys, dagster as dg
instance = dg.DagsterInstance.get()
run = instance.get_run_by_id(sys.argv[1])
instance.report_run_failed(run, message="run process died; pool slots freed by hand")
instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
"""


def range_command(run_config: dict | None = None) -> list[str]:
    """The CLI range command over FIRST...LAST, with `run_config` if given."""
    return materialize_command(FIRST, LAST, *(["--config-json", json.dumps(run_config)] if run_config else []))


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def data_files(root: Path) -> list[Path]:
    return sorted(root.rglob("data.parquet")) if root.exists() else []


# --- SIGKILL mid-run ----------------------------------------------------------------------

SLOW = SandboxConfig(
    seed=51,
    start_date=dt.date(2024, 3, 1),
    days=8,
    records_per_day=60,
    bindbee=ProviderFaults(latency_ms=120),
    nexudus=ProviderFaults(latency_ms=120),
)


def one_day_windows() -> dict:
    """Run config: the shipped resources, with request windows of one day so files land one by one."""
    slow = {"max_window_days": 1, "max_concurrent_requests": 1}
    bindbee = {
        "base_url": {"env": "BINDBEE_BASE_URL"},
        "api_key": {"env": "BINDBEE_API_KEY"},
        "connector_token": {"env": "BINDBEE_CONNECTOR_TOKEN"},
    }
    nexudus = {
        "base_url": {"env": "NEXUDUS_BASE_URL"},
        "username": {"env": "NEXUDUS_USERNAME"},
        "password": {"env": "NEXUDUS_PASSWORD"},
    }
    return {
        **IN_PROCESS,
        "resources": {"bindbee": {"config": {**slow, **bindbee}}, "nexudus": {"config": {**slow, **nexudus}}},
    }


def kill_when(process: subprocess.Popen, root: Path, files: int, deadline_s: float = 120) -> int:
    """SIGKILL the run's process group once `files` day files exist; returns how many existed."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:  # bounded polling for progress, not a timing assumption
        assert process.poll() is None, "the run ended before the kill point"
        if len(data_files(root)) >= files:
            os.killpg(process.pid, signal.SIGKILL)  # the group led by the PID we started
            process.wait()
            return len(data_files(root))
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    raise AssertionError(f"fewer than {files} files after {deadline_s}s")


def assert_every_file_whole_and_exact(sb: Sandbox, root: Path) -> None:
    """Every file a reader can see is complete and right; only `_`-prefixed files are anything else."""
    stray = [p for p in root.rglob("*") if p.is_file() and p.name != "data.parquet" and not p.name.startswith("_")]
    assert not stray
    storage = ParquetStorage(root=str(root))
    for asset in ASSETS:
        if not (root / asset).exists():
            continue
        dataset = ds.dataset(root / asset, format="parquet", partitioning="hive")
        assert {Path(f).name for f in dataset.files} <= {"data.parquet"}  # temporaries are skipped
        dataset.to_table()  # and every file it does see reads
    for path in data_files(root):
        if path.parent.parent.name == "nexudus_course_members":  # the enrolment snapshot, unpartitioned
            snapshot = storage.read(str(path.parent.relative_to(root)), None)
            assert snapshot is not None and snapshot["id"].to_pylist() == [m["Id"] for m in sb.dataset.course_members()]
            continue
        asset, day = str(path.parent.parent.relative_to(root)), path.parent.name.removeprefix("date=")
        start, end = day_bounds_utc(day)
        table = storage.read(asset, dt.date.fromisoformat(day))
        assert table is not None, path
        if asset == source_dir("bindbee"):
            want = expected_bindbee(sb, start, end)
            assert file_rows(table, list(want[0]) if want else ["id"]) == want, path
        elif asset == source_dir("nexudus"):
            want = expected_nexudus(sb, start, end)
            assert file_rows(table, list(want[0]) if want else ["id"]) == want, path
        else:
            keys = sorted(zip(table["provider"].to_pylist(), table["completion_id"].to_pylist(), strict=True))
            assert keys == sorted(
                [("bindbee", r["id"]) for r in expected_bindbee(sb, start, end)]
                + [("nexudus", str(r["id"])) for r in expected_nexudus(sb, start, end)]
            ), path


def held_slots(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        slot.step_key
        for pool in ("bindbee-default", "nexudus-default")
        for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        if slot.run_id == run_id
    ]


def free_slots_by_hand(env: dict[str, str], run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setattr(sys, "argv", ["free-slots", run_id])
    exec(compile(FREE_SLOTS_RECIPE, "free-slots", "exec"), {})


def test_sigkill_mid_run_leaves_only_whole_files_and_a_rerun_restores_exact_data(tmp_path, monkeypatch):
    with start_sandbox(SLOW) as sb:
        env = location_env(sb.base_url, tmp_path)
        root = Path(env["COMPLETIONS_DATA_ROOT"])
        # Kill points: among the Bindbee days, among the Nexudus days (both steps hold their
        # provider's pool slot), and during the merge (no pool).
        for number, (files, in_pool) in enumerate(((2, True), (7, True), (12, False))):
            process = launch(range_command(one_day_windows()), env, tmp_path / f"killed-{number}.log")
            assert kill_when(process, root, files) >= files
            assert_every_file_whole_and_exact(sb, root)
            instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
            run = instance.get_runs(limit=1)[0]
            assert run.status == dg.DagsterRunStatus.STARTED  # nobody is left to say it ended
            # The local instance limits no pool (connections take turns through file locks,
            # which die with their holder): the killed run holds nothing the next run waits for.
            assert not held_slots(instance, run.run_id), in_pool
            free_slots_by_hand(env, run.run_id, monkeypatch)  # the README's recipe still ends the run
            assert not held_slots(instance, run.run_id)
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            instance.dispose()
        # What a writer killed between its temporary file and the rename leaves behind.
        sample = data_files(root)[0]
        for directory in (sample.parent, root / "lms_completions" / f"date={LAST}"):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "_tmp-killed-mid-write.parquet").write_bytes(sample.read_bytes()[:1000])
        assert_every_file_whole_and_exact(sb, root)

        done = subprocess.run(range_command(IN_PROCESS), env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        storage = ParquetStorage(root=str(root))
        for day in DAYS:
            assert_day_matches_ground_truth(sb, storage, day)
    assert not list(root.rglob("_tmp-*"))  # a temporary never outlives the next write of its partition
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    last = instance.get_runs(limit=1)[0]
    assert last.status == dg.DagsterRunStatus.SUCCESS
    assert all(e.passed for e in check_results(instance, last.run_id))


# --- two runs of the same days at once ----------------------------------------------------


def production_env(base_url: str, tmp_path: Path, postgres_server, monkeypatch: pytest.MonkeyPatch) -> dict:
    """location_env on the production instance (deploy/dagster.yaml) in a database of its own."""
    database = f"runs_{tmp_path.name.lower().replace('-', '_')}"[:60]
    connection = postgres_server.connect("postgres")
    try:
        connection.autocommit = True
        connection.cursor().execute(f"CREATE DATABASE {database}")
    finally:
        connection.close()
    pg = postgres_server.environment() | {"DAGSTER_PG_DB": database}
    for name, value in pg.items():
        monkeypatch.setenv(name, value)  # prepare_dagster_home opens the instance
    return location_env(base_url, tmp_path, REPO / "deploy" / "dagster.yaml") | pg


def test_two_runs_of_the_same_days_take_turns_per_connection_through_the_pools(tmp_path, postgres_server, monkeypatch):
    # On PostgreSQL a slot claim is atomic (SELECT … FOR UPDATE SKIP LOCKED). Dagster's SQLite
    # storage has no row locks: two claims at the same instant can both win (seen here), so
    # the guarantee is tested where production runs it; the README says so for local use.
    # Latency stretches each connection's fetch to seconds, so unserialised fetches would overlap.
    # Each run has a lock directory of its own, as on two machines: only the pools can serialise them.
    config = SandboxConfig(
        seed=52,
        start_date=dt.date(2024, 3, 1),
        days=8,
        records_per_day=80,
        bindbee=ProviderFaults(latency_ms=250),
        nexudus=ProviderFaults(latency_ms=200),
    )
    with start_sandbox(config) as sb:
        env = production_env(sb.base_url, tmp_path, postgres_server, monkeypatch)
        # In-process runs claim pool slots exactly as the default executor's step processes do.
        seen = len(sb.request_log())
        runs = [
            launch(
                range_command(IN_PROCESS),
                env | {LOCK_DIR_VARIABLE: str(tmp_path / f"locks-{i}")},
                tmp_path / f"run-{i}.log",
            )
            for i in range(2)
        ]
        try:
            codes = [process.wait(timeout=240) for process in runs]
        finally:
            for process in runs:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        assert codes == [0, 0], [(tmp_path / f"run-{i}.log").read_text()[-2000:] for i in range(2)]
        storage = ParquetStorage(root=env["COMPLETIONS_DATA_ROOT"])
        for day in DAYS:
            assert_day_matches_ground_truth(sb, storage, day)
        requests = sb.request_log()[seen:]
    assert len({r.user_agent for r in requests if r.bucket == "bindbee"}) == 2  # both runs fetched
    root = Path(env["COMPLETIONS_DATA_ROOT"])
    assert not list(root.rglob("_tmp-*"))
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    lifetimes = [
        (run.start_time, run.end_time) for run in (instance.get_run_record_by_id(r.run_id) for r in instance.get_runs())
    ]
    assert len(lifetimes) == 2 and max(s for s, _ in lifetimes) < min(e for _, e in lifetimes)  # truly at once
    assert overlaps(requests) == []


# --- bad configuration --------------------------------------------------------------------

# name -> (environment changes, None unsets the variable; text the refusal must name)
BAD_SETTINGS: dict[str, tuple[dict[str, str | None], str]] = {
    "missing_secret": ({"BINDBEE_API_KEY": None}, "BINDBEE_API_KEY"),
    "plain_http_to_a_remote_host": ({"NEXUDUS_BASE_URL": "http://spaces.nexudus.example"}, "base URL must be https://"),
    "unknown_time_zone": ({"COMPLETIONS_TIMEZONE": "Mars/Olympus_Mons"}, "COMPLETIONS_TIMEZONE='Mars/Olympus_Mons'"),
    "start_date_in_the_future": ({"COMPLETIONS_START_DATE": "2999-01-01"}, "COMPLETIONS_START_DATE=2999-01-01"),
    "malformed_data_root": ({"COMPLETIONS_DATA_ROOT": "nosuchfs://bucket/prefix"}, "COMPLETIONS_DATA_ROOT="),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, str, dict]]]:
    """Every bad setting launched at once (default executor), each against its own sandbox."""
    with contextlib.ExitStack() as stack:
        launched = {}
        for name, (changes, _) in BAD_SETTINGS.items():
            sb = stack.enter_context(
                start_sandbox(SandboxConfig(start_date=dt.date(2024, 3, 1), days=8, records_per_day=20))
            )
            env = location_env(sb.base_url, tmp_path_factory.mktemp(name))
            for variable, value in changes.items():
                if value is None:
                    env.pop(variable)
                else:
                    env[variable] = value
            process = subprocess.Popen(
                range_command(),
                env=env,
                cwd=REPO,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(stop_group, process)
            launched[name] = (sb, process)
        yield {name: (*finish(process), sb.stats()) for name, (sb, process) in launched.items()}


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=180)
    return process.returncode, output


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # the group led by the PID we started
        process.wait()


@pytest.mark.parametrize("name", list(BAD_SETTINGS))
def test_bad_configuration_is_refused_before_any_request(refused, name):
    code, output, stats = refused[name]
    assert code != 0
    assert BAD_SETTINGS[name][1] in output, output[-3000:]
    requests = {bucket: counts["requests"] for bucket, counts in stats.items()}
    if name == "missing_secret":
        # A connection's secret is read when its step starts: only that connection is refused.
        assert requests["bindbee"] == 0 and requests["nexudus"] > 0
        assert "environment variable BINDBEE_API_KEY is not set" in output
    else:
        assert requests == {"bindbee": 0, "nexudus": 0, "token": 0}
