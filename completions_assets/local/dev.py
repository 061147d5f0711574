"""`make dev`: the sandbox plus `dagster dev` on 127.0.0.1:3000; Ctrl-C stops both."""

import datetime as dt
import os
import signal
import subprocess
import sys

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local.launch import (
    example_connections,
    local_dagster_home,
    prepare_dagster_home,
    restore_default_signals,
    sandbox_connection_args,
    sandbox_environment,
    sandbox_process,
    stop,
)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C or a SIGTERM stops both children, even when started from a script
    # that left these signals ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    path, connections = example_connections()
    home = prepare_dagster_home(local_dagster_home(), environ={**os.environ, FILE_VARIABLE: path})
    port = os.environ.get("DAGSTER_PORT", "3000")
    # The sandbox holds the last 90 days, so recent partitions have data.
    first = dt.date.today() - dt.timedelta(days=90)
    args = ["--start-date", first.isoformat(), "--days", "91", *sandbox_connection_args(connections)]
    with sandbox_process(args) as base_url:
        print(f"sandbox serving {', '.join(c.label for c in connections)} at {base_url}", flush=True)
        env = sandbox_environment(base_url, connections=connections) | {"DAGSTER_HOME": str(home), FILE_VARIABLE: path}
        # The installed module, not ./workspace.yaml: works from any directory.
        command = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-m",
            "completions_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            port,
        ]
        server = subprocess.Popen(command, env=env, preexec_fn=restore_default_signals)
        try:
            return server.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop(server)


if __name__ == "__main__":
    sys.exit(main())
