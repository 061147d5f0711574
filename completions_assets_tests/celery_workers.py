"""Celery workers for the Celery profile's test, each started as docs/deployment.md says
(`dagster-celery worker start -y deploy/celery.yaml`), in a working directory of its own,
and stopped by its process group."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import celery

from completions_assets.local.launch import REPO, prepare_dagster_home
from completions_assets.turns import LOCK_DIR_VARIABLE

PRODUCTION_CONFIG = REPO / "deploy" / "dagster.yaml"
WORKER_CONFIG = REPO / "deploy" / "celery.yaml"
READY_S = 120
QUEUE = "dagster"  # dagster-celery's queue


@dataclass(frozen=True)
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def owns(self, pid: int) -> bool:
        """Whether process `pid` is one of this worker's (its process group is the one the worker leads)."""
        try:
            return os.getpgid(pid) == self.process.pid
        except ProcessLookupError:
            return False


def machine(directory: Path, env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a process that shares nothing local with the others: its own DAGSTER_HOME
    (deploy/dagster.yaml), locks and temporary files, all under `directory`."""
    home = prepare_dagster_home(directory / "home", PRODUCTION_CONFIG, environ={})
    (directory / "tmp").mkdir(exist_ok=True)
    return dict(env) | {
        "DAGSTER_HOME": str(home),
        LOCK_DIR_VARIABLE: str(directory / "locks"),
        "TMPDIR": str(directory / "tmp"),
    }


def start_worker(name: str, directory: Path, env: Mapping[str, str]) -> Worker:
    """`dagster-celery worker start` in `directory`: one step at a time, in a pool process that
    the worker replaces if it dies."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "worker.log"
    command = [
        str(Path(sys.executable).with_name("dagster-celery")),
        "worker", "start", "-A", "dagster_celery.app", "-y", str(WORKER_CONFIG), "-n", name,
        "--", "--concurrency=1", "--pool=prefork", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=machine(directory, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(name, process, log)


def wait_ready(worker: Worker) -> None:
    deadline = time.monotonic() + READY_S
    while " ready." not in worker.log.read_text():  # bounded: readiness
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{worker.name} not ready: {worker.log.read_text()[-3000:]}"
        time.sleep(0.1)


def stop_worker(worker: Worker) -> None:
    """SIGTERM to the group led by the PID we started (the CLI, Celery and its pool), then SIGKILL."""
    if worker.process.poll() is not None:
        return
    os.killpg(worker.process.pid, signal.SIGTERM)
    try:
        worker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()


def restart_worker(worker: Worker, env: Mapping[str, str]) -> Worker:
    """`worker` started anew, with its name and working directory, once its processes are gone."""
    worker.process.wait(timeout=30)
    started = start_worker(worker.name, worker.log.parent, env)
    wait_ready(started)
    return started


@contextmanager
def workers(names: list[str], root: Path, env: Mapping[str, str]) -> Iterator[list[Worker]]:
    """The workers, started and ready; stopped when the block ends, as is any worker the block puts
    in their place in the yielded list (restart_worker)."""
    started: list[Worker] = []
    try:
        for name in names:
            started.append(start_worker(name, root / name, env))
        for worker in started:
            wait_ready(worker)
        yield started
    finally:
        for worker in started:
            stop_worker(worker)


@contextmanager
def not_consuming(worker: Worker, broker: str) -> Iterator[None]:
    """`worker` takes no new step while the block runs (Celery's remote control), so another worker
    takes the next one: a worker that has started a step may otherwise reserve the next as well."""
    app = celery.Celery(broker=broker)
    node = [f"{worker.name}@{socket.gethostname()}"]
    assert app.control.cancel_consumer(QUEUE, destination=node, reply=True, timeout=10), f"{node} did not answer"
    try:
        yield
    finally:
        app.control.add_consumer(QUEUE, destination=node, reply=True, timeout=10)
