"""The Celery profile for real: Redis on 127.0.0.1 as the broker, two Celery workers in working
directories of their own that share nothing local (the data root is the S3 server, the instance
the real PostgreSQL), and range runs over the example file's five connections launched with the
CLI range command. Steps run on both workers; a connection's turn holds across workers and
across two concurrent runs (the sandbox's request log); a worker's step process killed with
SIGKILL fails its run naming the step, leaves no partial file and does not hold the next run
back once run monitoring frees its slots; the files are byte-identical to a local run's."""

import datetime as dt
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import s3fs
import yaml

from completions_assets.connections import FILE_VARIABLE
from completions_assets.defs.executor import CELERY_CONFIG, EXECUTOR_VARIABLE, LOST_AFTER_VARIABLE
from completions_assets.local.launch import (
    REPO,
    dg_command,
    example_connections,
    materialize_command,
    sandbox_environment,
)
from completions_assets.providers import PROVIDERS
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.app import LoggedRequest
from completions_assets_tests.celery_workers import (
    WORKER_CONFIG,
    Worker,
    machine,
    not_consuming,
    restart_worker,
    workers,
)
from completions_assets_tests.servers import s3_bucket, s3_objects

pytestmark = pytest.mark.e2e

FIRST, LAST = "2024-03-02", "2024-03-04"
PATH, CONNECTIONS = example_connections({})
SERVED = {p.name: tuple(c.name for c in CONNECTIONS if c.provider is p) for p in PROVIDERS}
BUCKET = "completions-celery"
COMMAND = materialize_command(FIRST, LAST)
BINDBEE_ONLY = dg_command(
    "launch", "--assets", "key:bindbee_completions/*", "--partition-range", f"{FIRST}...{LAST}",
    "-m", "completions_assets.definitions",
)  # fmt: skip
SLOW_MS = 300
HOLD_MS = 8000  # while the second run's step starts; far below the clients' 60 s read timeout
PID = re.compile(r"\(pid (\d+)\)")
# A worker silent this long has lost its step; far below the steps that run longer than this on
# live workers (HOLD_MS and the concurrent runs), which must not be declared lost.
LOST_AFTER_S = 5


@pytest.fixture(scope="module")
def tenants() -> Iterator[Sandbox]:
    config = SandboxConfig(seed=47, start_date=dt.date(2024, 3, 1), days=5, records_per_day=120, connections=SERVED)
    with start_sandbox(config) as sandbox:
        sandbox.update(bindbee=ProviderFaults(latency_ms=20), nexudus=ProviderFaults(latency_ms=20))
        yield sandbox


def location(sandbox: Sandbox) -> dict[str, str]:
    """What every process of the code location reads, on any machine."""
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return sandbox_environment(sandbox.base_url, {"PATH": path}, CONNECTIONS) | {
        FILE_VARIABLE: PATH,
        "COMPLETIONS_START_DATE": "2024-01-01",
        "COMPLETIONS_TIMEZONE": "UTC",
        "COMPLETIONS_FRESHNESS_HOUR": "off",
    }


def local_run(sandbox: Sandbox, directory: Path) -> dict[str, bytes]:
    """The same range on one machine with the local profile; every file under its data root by relative path."""
    from completions_assets.local.launch import prepare_dagster_home

    home = prepare_dagster_home(directory / "home", environ={FILE_VARIABLE: PATH})
    env = location(sandbox) | {"DAGSTER_HOME": str(home), "COMPLETIONS_DATA_ROOT": str(directory / "data")}
    done = subprocess.run(COMMAND, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    root = directory / "data"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def bucket_files(fs: s3fs.S3FileSystem) -> dict[str, bytes]:
    prefix = f"{BUCKET}/data/"
    return {key.removeprefix(prefix): data for key, data in s3_objects(fs, f"{BUCKET}/data").items()}


def cross_process_overlaps(requests: list[LoggedRequest]) -> int:
    """Requests of one connection that overlap in time a request of the same connection from another process."""
    found = 0
    by_connection: dict[tuple[str, str | None], list[LoggedRequest]] = {}
    for request in requests:
        provider = "nexudus" if request.bucket == "token" else request.bucket
        by_connection.setdefault((provider, request.connection), []).append(request)
    for mine in by_connection.values():
        for request in mine:
            pid = _pid(request)
            found += any(
                _pid(other) != pid and other.arrived < request.answered and request.arrived < other.answered
                for other in mine
            )
    return found


def _pid(request: LoggedRequest) -> int:
    match = PID.search(request.user_agent)
    assert match, request.user_agent
    return int(match.group(1))


def steps_by_worker(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Which worker ran which step, from the note each worker writes when it starts a step."""
    ran: dict[str, str] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata if entry.dagster_event else {}
        if "Celery worker" in metadata:
            ran[str(entry.step_key)] = str(metadata["Celery worker"].value).split("@")[0]
    return ran


def launch(env: dict[str, str], log: Path, command: list[str] = COMMAND) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """The error the run failed with."""
    (failure,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    data = failure.get_dagster_event().event_specific_data
    error = getattr(data, "error", None)  # a run failure's data holds the error it failed with
    assert error is not None, data
    return error.to_string()


def _whole_local_files_only(fs: s3fs.S3FileSystem, local: dict[str, bytes]) -> None:
    """Every file in the bucket is a whole Parquet file, byte for byte the local run's (a failed run
    may have written fewer)."""
    for key, data in bucket_files(fs).items():
        pq.read_table(io.BytesIO(data))  # whole Parquet files only
        assert data == local[key], key  # and each the local run's


def free_slots_of_finished_runs(instance: dg.DagsterInstance) -> None:
    """What the daemon's run monitoring does for a run that ended (`free_slots_after_run_end_seconds`
    after its end, deploy/dagster.yaml): its pool slots are freed."""
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_finished, run_id  # only an ended run's slots
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def test_the_worker_configuration_names_the_executors_broker_and_backend():
    assert yaml.safe_load(WORKER_CONFIG.read_text())["execution"]["config"] == CELERY_CONFIG


def test_steps_on_two_celery_workers(tenants, tmp_path, redis_server, postgres_server, s3_environment, monkeypatch):
    local = local_run(tenants, tmp_path / "local")
    fs = s3_bucket(s3_environment, BUCKET)
    database = postgres_server.fresh_database("celery_steps")
    for name, value in database.items():  # this process reads the instance too
        monkeypatch.setenv(name, value)
    env = (
        location(tenants)
        | database
        | s3_environment.environment()
        | {
            "COMPLETIONS_DATA_ROOT": f"s3://{BUCKET}/data",
            EXECUTOR_VARIABLE: "celery",
            "COMPLETIONS_CELERY_BROKER": f"{redis_server}/0",
            "COMPLETIONS_CELERY_BACKEND": f"{redis_server}/1",
            LOST_AFTER_VARIABLE: str(LOST_AFTER_S),
        }
    )
    launcher = machine(tmp_path / "launcher", env)
    with workers(["w1", "w2"], tmp_path, env) as pair:
        w1, w2 = pair
        instance = dg.DagsterInstance.from_config(launcher["DAGSTER_HOME"])
        try:
            _a_killed_step_fails_its_run(tenants, instance, launcher, [w1, w2], local, fs, tmp_path)
            free_slots_of_finished_runs(instance)
            _two_concurrent_runs(tenants, instance, launcher, local, fs, tmp_path)
            broker = env["COMPLETIONS_CELERY_BROKER"]
            _one_provider_at_once_on_both_workers(tenants, instance, launcher, [w1, w2], broker, local, fs, tmp_path)
            _a_lost_worker_fails_its_run(tenants, instance, launcher, pair, env, local, fs, tmp_path)
        finally:
            instance.dispose()


def _a_killed_step_fails_its_run(tenants, instance, env, pair: list[Worker], local, fs, tmp_path) -> dg.DagsterRun:
    tenants.update(bindbee=ProviderFaults(latency_ms=300))  # the step is still fetching when killed
    try:
        seen = len(tenants.request_log())
        run = launch(env, tmp_path / "killed.log")
        pid = _pid(_first_request(tenants, seen, run, tmp_path / "killed.log"))
        (owner,) = [w for w in pair if w.owns(pid)]  # a worker's step process, not the launcher
        os.kill(pid, signal.SIGKILL)
        assert run.wait(timeout=300) != 0
    finally:
        tenants.update(bindbee=ProviderFaults(latency_ms=20))
    failed = instance.get_runs()[0]
    assert failed.status == dg.DagsterRunStatus.FAILURE
    error = _failure(instance, failed)
    assert "[bindbee_completions]" in error and "SIGKILL" in error, error
    print(f"killed pid {pid} of {owner.name}; run {failed.run_id} failed: {error.splitlines()[1][:200]}")
    assert owner.process.poll() is None  # the worker lives on, with a new step process
    _whole_local_files_only(fs, local)
    assert failed.run_id in instance.event_log_storage.get_concurrency_run_ids()  # its slots, until monitoring
    return failed


def _a_lost_worker_fails_its_run(tenants, instance, env, pair: list[Worker], worker_env, local, fs, tmp_path) -> None:
    """A whole worker (its process group: the CLI, Celery's main process and its pool) killed with
    SIGKILL while its step fetches, as a lost machine: the run fails within the grace period and a
    margin, naming the step and the worker; the worker started again, the next run is exact."""
    for key in [key for key in bucket_files(fs) if key.startswith("bindbee")]:
        fs.rm(f"{BUCKET}/data/{key}")  # so a partial file of the lost step's would show
    before = {r.run_id for r in instance.get_runs()}
    tenants.update(bindbee=ProviderFaults(latency_ms=300))  # the step is still fetching when its worker dies
    run = launch(env, tmp_path / "lost.log")
    try:
        pid = _pid(_first_request(tenants, len(tenants.request_log()), run, tmp_path / "lost.log"))
        (lost,) = [w for w in pair if w.owns(pid)]
        killed = time.monotonic()
        os.killpg(lost.process.pid, signal.SIGKILL)
        assert run.wait(timeout=LOST_AFTER_S + 60) != 0  # bounded: the grace, a round of pings, a margin
        took = time.monotonic() - killed
    finally:
        tenants.update(bindbee=ProviderFaults(latency_ms=20))
        if run.poll() is None:
            run.kill()
            run.wait()
    (failed,) = [r for r in instance.get_runs() if r.run_id not in before]
    assert failed.status == dg.DagsterRunStatus.FAILURE
    error = _failure(instance, failed)
    print(
        f"killed {lost.name}'s process group ({lost.process.pid}); run {failed.run_id} failed {took:.1f} s later: {error}"
    )
    node = f"{lost.name}@{socket.gethostname()}"
    assert "[bindbee_completions]" in error and f"worker {node} stopped answering" in error, error
    _whole_local_files_only(fs, local)
    free_slots_of_finished_runs(instance)  # as run monitoring does
    pair[pair.index(lost)] = restart_worker(lost, worker_env)
    again = launch(env, tmp_path / "after-lost.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "after-lost.log").read_text()[-3000:]
    assert "Warning" not in (tmp_path / "after-lost.log").read_text()
    assert bucket_files(fs) == local


def concurrent_pair(tenants, instance, env, tmp_path, name: str, command: list[str]) -> tuple[list, list]:
    """Two runs of `command` launched together while every answer is slow; the runs, and the
    requests they made."""
    seen = len(tenants.request_log())
    before = {r.run_id for r in instance.get_runs()}
    # Each connection's fetch spans many answers, so steps fetching at once on both workers overlap.
    tenants.update(bindbee=ProviderFaults(latency_ms=SLOW_MS), nexudus=ProviderFaults(latency_ms=SLOW_MS))
    try:
        logs = [tmp_path / f"{name}-{n}.log" for n in range(2)]
        launched = [launch(env, log, command) for log in logs]
        for run, log in zip(launched, logs, strict=True):
            assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
            assert "Warning" not in log.read_text(), log.read_text()[-3000:]  # a successful run warns of nothing
    finally:
        tenants.update(bindbee=ProviderFaults(latency_ms=20), nexudus=ProviderFaults(latency_ms=20))
    runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    return runs, tenants.request_log()[seen:]


def waits(instance: dg.DagsterInstance, runs: list) -> list[str]:
    """What the runs' steps logged when a connection had to wait for its turn."""
    return [
        entry.user_message
        for run in runs
        for entry in instance.all_logs(run.run_id)
        if "waits for its turn" in entry.user_message
    ]


def _two_concurrent_runs(tenants, instance, env, local, fs, tmp_path) -> None:
    runs, requests = concurrent_pair(tenants, instance, env, tmp_path, "whole", COMMAND)
    ran = {r.run_id: steps_by_worker(instance, r.run_id) for r in runs}
    print(f"steps by worker: {ran}")
    assert {worker for steps in ran.values() for worker in steps.values()} == {"w1", "w2"}
    overlapping = cross_process_overlaps(requests)
    print(
        f"whole runs: {len(requests)} requests, {overlapping} overlapping per connection, {len(waits(instance, runs))} waits"
    )
    assert overlapping == 0
    assert bucket_files(fs) == local  # every file, byte for byte, lms_completions included


def _one_provider_at_once_on_both_workers(tenants, instance, env, pair: list[Worker], broker, local, fs, tmp_path):
    """Two runs of the Bindbee connections alone, one step each, on different workers, the second
    started while the first holds every connection's turn: it must wait for each."""
    seen = len(tenants.request_log())
    before = {r.run_id for r in instance.get_runs()}
    logs = [tmp_path / f"bindbee-{n}.log" for n in range(2)]
    tenants.update(bindbee=ProviderFaults(latency_ms=HOLD_MS))  # the first keeps its turns until told
    try:
        first = launch(env, logs[0], BINDBEE_ONLY)
        pid = _pid(_first_request(tenants, seen, first, logs[0]))
        (busy,) = [w for w in pair if w.owns(pid)]
        with not_consuming(busy, broker):
            second = launch(env, logs[1], BINDBEE_ONLY)
            deadline = time.monotonic() + 180
            while not waits(instance, [r for r in instance.get_runs() if r.run_id not in before]):  # readiness
                assert time.monotonic() < deadline and second.poll() is None, logs[1].read_text()[-3000:]
                time.sleep(0.1)
            tenants.update(bindbee=ProviderFaults(latency_ms=20))  # the first may finish now
            for run, log in zip((first, second), logs, strict=True):
                assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        tenants.update(bindbee=ProviderFaults(latency_ms=20))
    runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    ran = [steps_by_worker(instance, r.run_id) for r in runs]
    requests = tenants.request_log()[seen:]
    overlapping, waited = cross_process_overlaps(requests), waits(instance, runs)
    print(f"bindbee runs: {ran}: {len(requests)} requests, {overlapping} overlapping per connection, waits: {waited}")
    assert sorted(worker for steps in ran for worker in steps.values()) == ["w1", "w2"], ran
    assert len(waited) == len(SERVED["bindbee"])  # each connection waited for its turn
    assert overlapping == 0
    assert bucket_files(fs) == local


def _first_request(tenants: Sandbox, seen: int, run: subprocess.Popen, log: Path) -> LoggedRequest:
    deadline = time.monotonic() + 180
    while not (fetching := [r for r in tenants.request_log()[seen:] if r.bucket == "bindbee"]):  # readiness
        assert time.monotonic() < deadline and run.poll() is None, log.read_text()[-3000:]
        time.sleep(0.05)
    return fetching[0]
