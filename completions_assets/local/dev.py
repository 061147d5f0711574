"""`make dev`: the sandbox plus `dg dev` on 127.0.0.1:3000 (`DAGSTER_PORT` another port); Ctrl-C stops both.

While both run, `make env` prints the `export` lines of their environment
(sandbox.env in the instance's directory) for a second shell.
"""

import datetime as dt
import os
import signal
import subprocess
import sys

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local.launch import (
    dg_command,
    example_connections,
    local_dagster_home,
    local_sandbox_args,
    prepare_dagster_home,
    restore_default_signals,
    sandbox_environment,
    sandbox_process,
    stop,
)
from completions_assets.local.shell_env import ENV_FILE, shell_exports


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
    with sandbox_process(local_sandbox_args(connections, dt.date.today())) as base_url:
        print(f"sandbox serving {', '.join(c.label for c in connections)} at {base_url}", flush=True)
        env = sandbox_environment(base_url, connections=connections) | {"DAGSTER_HOME": str(home), FILE_VARIABLE: path}
        exports = home / ENV_FILE
        exports.write_text(shell_exports(env, connections))
        # The installed module, not ./workspace.yaml: works from any directory.
        command = dg_command("dev", "-m", "completions_assets.definitions", "--host", "127.0.0.1", "--port", port)
        server = subprocess.Popen(command, env=env, preexec_fn=restore_default_signals)
        try:
            return server.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop(server)
            exports.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
