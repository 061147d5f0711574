"""On the local (SQLite) instance, two runs never fetch for the same connection at once, whatever
starts them; the proof is the sandbox's own request log, not Dagster's step events. A holder
killed with -9 leaves nothing behind that the next run waits for."""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from completions_assets.local.launch import REPO, materialize_command
from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.sandbox.app import LoggedRequest
from completions_assets.turns import LOCK_DIR_VARIABLE, file_turn
from completions_assets_tests.support import location_env, overlaps

pytestmark = pytest.mark.e2e

# One process per run (in-process executor): the turns to prove are between runs, and ten
# repetitions of two runs cost a few step-process start-ups less each.
IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'
COMMAND = materialize_command("2024-03-02", "2024-03-03", "--config-json", IN_PROCESS)
REPETITIONS = 10


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    config = SandboxConfig(seed=61, start_date=dt.date(2024, 3, 1), days=4, records_per_day=150)
    with start_sandbox(config) as running:
        running.update(bindbee=ProviderFaults(latency_ms=10), nexudus=ProviderFaults(latency_ms=10))
        yield running


@pytest.fixture
def busy_core() -> Iterator[None]:
    """One core kept busy, so the two runs' steps start at nearly the same instant less often by luck."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def launch(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            COMMAND, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_two_concurrent_cli_runs_never_fetch_for_one_connection_at_once(sb, tmp_path, busy_core):
    env = location_env(sb.base_url, tmp_path)
    for repetition in range(REPETITIONS):
        seen = len(sb.request_log())
        runs = [launch(env, tmp_path / f"run-{repetition}-{n}.log") for n in range(2)]
        for run in runs:
            assert run.wait(timeout=300) == 0, (tmp_path / f"run-{repetition}-0.log").read_text()[-2000:]
        requests = sb.request_log()[seen:]
        agents = {r.user_agent for r in requests if r.bucket == "bindbee"}
        assert len(agents) == 2, agents  # both runs fetched, each from its own process
        assert overlaps(requests) == [], f"repetition {repetition}"


def test_the_overlap_measure_sees_overlapping_fetches():
    # Guards the measure itself: two processes' requests interleaved in time are reported.
    a = [LoggedRequest(t, t + 0.5, "bindbee", "default", 200, "ua (pid 1)") for t in (0.0, 1.0)]
    b = [LoggedRequest(0.6, 0.9, "bindbee", "default", 200, "ua (pid 2)")]
    assert overlaps(a + b) and not overlaps(a)


def test_a_holder_killed_with_minus_9_does_not_hold_back_the_next_run(sb, tmp_path):
    env = location_env(sb.base_url, tmp_path)
    sb.update(bindbee=ProviderFaults(latency_ms=400))  # the first run is still fetching when killed
    try:
        seen = len(sb.request_log())
        first = launch(env, tmp_path / "killed.log")
        deadline = time.monotonic() + 120
        while not any(r.bucket == "bindbee" for r in sb.request_log()[seen:]):  # bounded: readiness
            assert time.monotonic() < deadline and first.poll() is None, "the first run never fetched"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        sb.update(bindbee=ProviderFaults(latency_ms=10))
    second = subprocess.run(COMMAND, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]


def test_a_connection_waiting_for_its_turn_says_so_in_the_run_log(sb, tmp_path):
    env = location_env(sb.base_url, tmp_path) | {LOCK_DIR_VARIABLE: str(tmp_path / "locks")}
    log = tmp_path / "waiting.log"
    seen = len(sb.request_log())
    with file_turn("bindbee-default", lambda message: None, threading.Event(), tmp_path / "locks"):  # another run
        run = launch(env, log)
        deadline = time.monotonic() + 120
        while "connection bindbee-default waits for its turn" not in log.read_text():  # bounded: readiness
            assert time.monotonic() < deadline and run.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        assert not [r for r in sb.request_log()[seen:] if r.bucket == "bindbee"]  # it waits before any request
    assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    (record,) = instance.get_runs()
    messages = [entry.user_message for entry in instance.all_logs(record.run_id)]
    assert any("connection bindbee-default waits for its turn: another run is fetching it" in m for m in messages)
    instance.dispose()
