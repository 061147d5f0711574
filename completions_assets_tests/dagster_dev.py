"""`dagster dev` for the tests that drive the UI's GraphQL API: started on a free port from
the repository with the given environment, stopped by its process group."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from completions_assets.local.launch import REPO
from completions_assets_tests.servers import free_port

READY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=10
    )
    response.raise_for_status()
    return response.json()["data"]


def wait_until_loaded(server: subprocess.Popen, port: int, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:  # bounded: readiness, not timing
        assert server.poll() is None, "dagster dev exited"
        try:
            entries = graphql(port, READY)["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                return
        except (httpx.HTTPError, KeyError, TypeError):
            pass
        time.sleep(0.5)
    raise AssertionError("dagster dev did not load the code location in time")


@contextmanager
def dagster_dev(env: dict[str, str]) -> Iterator[int]:
    """A running `dagster dev` with the code location loaded; yields its port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_loaded(server, port)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group led by the PID we started
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
