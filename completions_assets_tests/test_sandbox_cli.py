"""`python -m completions_assets.sandbox` as a process: URL first, serves, stops on SIGTERM."""

import os
import signal
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_cli_prints_url_serves_and_exits_cleanly_on_sigterm() -> None:
    command = [
        sys.executable,
        "-m",
        "completions_assets.sandbox",
        "--port",
        "0",
        "--days",
        "3",
        "--records-per-day",
        "20",
        "--bindbee-fail-on",
        "1",
        "--bindbee-fail-status",
        "503",
    ]
    # Without the product's variables the sandbox accepts its documented defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINDBEE_", "NEXUDUS_"))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer sandbox-bindbee-key", "x-connector-token": "sandbox-connector-token"}
        statuses = [
            httpx.get(f"{base_url}/api/lms/v1/completions", headers=headers, timeout=10).status_code for _ in range(2)
        ]
        assert statuses == [503, 200]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
