"""The watch over a run's Celery workers (completions_assets/defs/celery_watch.py) against real
Redis and a real prefork worker: a worker that keeps answering pings while its task runs longer
than the grace period keeps its task; a worker whose whole process group is killed with SIGKILL
mid-task has that task failed in the result backend, naming the worker and the step, and the task
it had reserved failed and revoked."""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery, states
from celery.exceptions import WorkerLostError

from completions_assets.defs.celery_watch import WorkerWatch
from completions_assets_tests.celery_workers import READY_S

pytestmark = pytest.mark.e2e

LOST_AFTER_S = 2


@pytest.fixture
def hold_env(redis_server) -> dict[str, str]:
    return {"HOLD_BROKER": f"{redis_server}/2", "HOLD_BACKEND": f"{redis_server}/3"}


@pytest.fixture
def worker(hold_env, tmp_path) -> Iterator[subprocess.Popen]:
    log = tmp_path / "worker.log"
    command = [
        str(Path(sys.executable).with_name("celery")), "-A", "completions_assets_tests.celery_hold_app", "worker",
        "-n", "holder@%h", "--loglevel=INFO", "--concurrency=1", "--pool=prefork", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=os.environ | hold_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + READY_S
        while " ready." not in log.read_text():  # bounded: readiness
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def started(app: Celery, task_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (meta := app.backend.get_task_meta(task_id))["status"] != states.STARTED:  # bounded: readiness
        assert time.monotonic() < deadline, meta
        time.sleep(0.05)
    return meta["result"]


def test_a_busy_worker_keeps_its_task_and_a_lost_one_has_it_failed(hold_env, worker):
    app = Celery("hold", broker=hold_env["HOLD_BROKER"], backend=hold_env["HOLD_BACKEND"])
    releases = redis.Redis.from_url(hold_env["HOLD_BROKER"])
    try:
        # Busy: the task runs for three grace periods; the worker's main process answers every ping.
        key = f"release-{uuid.uuid4()}"
        busy = app.send_task("hold", args=[key, 120])
        watch = WorkerWatch(app, LOST_AFTER_S)
        watch.follow("busy_step", busy.id)
        host = started(app, busy.id)["hostname"]
        with watch.running():
            end = time.monotonic() + 3 * LOST_AFTER_S
            while time.monotonic() < end:  # the watch pings in its thread meanwhile
                meta = app.backend.get_task_meta(busy.id)
                assert meta["status"] == states.STARTED, meta
                time.sleep(0.1)
            releases.rpush(key, "go")
            assert busy.get(timeout=60) == "released"

        # Lost: the whole worker (main process and pool) killed with SIGKILL while it holds a task
        # and has reserved the next one.
        lost = app.send_task("hold", args=[f"release-{uuid.uuid4()}", 120])
        reserved = app.send_task("hold", args=[f"release-{uuid.uuid4()}", 120])
        watch = WorkerWatch(app, LOST_AFTER_S)
        watch.follow("lost_step", lost.id)
        watch.follow("next_step", reserved.id)
        assert started(app, lost.id)["hostname"] == host
        deadline = time.monotonic() + 60
        while reserved.id not in str(app.control.inspect([host], timeout=2).reserved()):  # bounded: readiness
            assert time.monotonic() < deadline
        with watch.running():
            killed = time.monotonic()
            os.killpg(worker.pid, signal.SIGKILL)
            with pytest.raises(WorkerLostError) as failed:
                lost.get(timeout=LOST_AFTER_S + 30)  # bounded: grace, a round of pings, and a margin
            took = time.monotonic() - killed
            with pytest.raises(WorkerLostError) as not_started:
                reserved.get(timeout=30)
        print(f"lost after {took:.1f} s: {failed.value}; {not_started.value}")
        assert f"worker {host} stopped answering while running step lost_step" in str(failed.value)
        assert LOST_AFTER_S <= took < LOST_AFTER_S + 30
        assert f"step next_step not started (task {reserved.id}, revoked)" in str(not_started.value)
    finally:
        app.close()
