"""Running the project on one machine against the bundled sandbox.

Shared by `make demo`, `make dev`, the benchmark and the end-to-end tests, so
all of them start the sandbox and point the resources at it the same way.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dagster import DagsterInstance

from completions_assets.connections import FILE_VARIABLE, Connection, load_connections
from completions_assets.providers import PROVIDERS
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS, connection_credentials

# The checkout this module sits in: only the tests and the benchmark, which run
# from a checkout, use it. `make demo`/`make dev` don't, so they also work from
# an installed wheel (there it would name site-packages' parent).
REPO = Path(__file__).resolve().parents[2]
# The local instance configuration, shipped in the package (package data).
INSTANCE_CONFIG = files("completions_assets.local") / "dagster.yaml"
# Where an instance configuration names its own DAGSTER_HOME (a storage's base_dir).
HOME_PLACEHOLDER = "{dagster_home}"
EXAMPLE_CONNECTIONS = files("completions_assets.local") / "connections.yaml"


def dg_command(*args: str) -> list[str]:
    """`dg` of this environment (its script beside this interpreter) with `args`."""
    return [str(Path(sys.executable).with_name("dg")), *args]


def materialize_command(first: str, last: str, *extra: str) -> list[str]:
    """The README's CLI range command: `completions_job` (every asset and check of every
    connection) over `first`...`last`, one run, executed in this process's terminal."""
    return dg_command(
        "launch", "--job", "completions_job", "--partition-range", f"{first}...{last}",
        "-m", "completions_assets.definitions", *extra,
    )  # fmt: skip


def restore_default_signals() -> None:
    # A child started from a non-interactive shell inherits SIGINT/SIGTERM as
    # ignored and would never stop on them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def sandbox_process(args: Sequence[str] = ()) -> Iterator[str]:
    """Start `python -m completions_assets.sandbox` on a free port; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "completions_assets.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=restore_default_signals,
    )
    try:
        assert process.stdout is not None  # stdout=PIPE
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"sandbox did not start (first line: {base_url!r})")
        yield base_url
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a child by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sandbox_environment(
    base_url: str, environ: Mapping[str, str] = os.environ, connections: Sequence[Connection] = ()
) -> dict[str, str]:
    """`environ` with both providers pointed at the sandbox and its credentials wherever
    one is unset: the defaults, and those of each of `connections` (the sandbox accepts
    the same values)."""
    env = dict(environ)
    env["BINDBEE_BASE_URL"] = base_url
    env["NEXUDUS_BASE_URL"] = base_url
    for name, value in DEFAULT_CREDENTIALS.items():
        if name != "NEXUDUS_ACCESS_TOKEN":
            env.setdefault(name, value)
    for connection in connections:
        accepted = connection_credentials(connection.provider.name, connection.name, env)
        for variable in connection.secrets.values():
            if variable in accepted:
                env.setdefault(variable, accepted[variable])
    return env


def example_connections(environ: Mapping[str, str] = os.environ) -> tuple[str, tuple[Connection, ...]]:
    """The connections file of `make demo`/`make dev` (the user's, else the shipped example) and its connections."""
    path = environ.get(FILE_VARIABLE) or str(EXAMPLE_CONNECTIONS)
    return path, load_connections(PROVIDERS, {**environ, FILE_VARIABLE: path})


LOCAL_SANDBOX_DAYS = 90


def local_sandbox_args(connections: Sequence[Connection], today: dt.date) -> list[str]:
    """The sandbox of `make demo` and `make dev`: the last 90 days before `today`, and `today`.

    One span for both: the sandbox's records of a day depend on where its data set starts, and
    both write to ./data, so a demo's days backfilled again under `make dev` must find the same
    records, or the fetch would replace them all (refused by `no_mass_removal`)."""
    first = today - dt.timedelta(days=LOCAL_SANDBOX_DAYS)
    return [
        "--start-date",
        first.isoformat(),
        "--days",
        str(LOCAL_SANDBOX_DAYS + 1),
        *sandbox_connection_args(connections),
    ]


def sandbox_connection_args(connections: Sequence[Connection]) -> list[str]:
    """The sandbox options that serve exactly `connections`."""
    args = []
    for provider in PROVIDERS:
        names = [c.name for c in connections if c.provider is provider]
        if names:
            args += [f"--{provider.name}-connections", ",".join(names)]
    return args


def local_dagster_home() -> Path:
    """Where `make demo`/`make dev` keep their instance: ./.dagster_home, next to
    ./data (the default COMPLETIONS_DATA_ROOT), both under the working directory."""
    return Path.cwd() / ".dagster_home"


def prepare_dagster_home(
    path: Path, config: Traversable = INSTANCE_CONFIG, environ: Mapping[str, str] = os.environ
) -> Path:
    """A DAGSTER_HOME holding `config` (by default the shipped local instance configuration) with
    the home's path in place of {dagster_home}; when `config` limits pools (the PostgreSQL one
    does), a pool of one slot for each connection `environ` configures."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(config.read_text().replace(HOME_PLACEHOLDER, str(path.absolute())))
    # Create the storage and the provider pools now. Two runs starting at once on
    # a new home would otherwise race to create the schema ("table alembic_version
    # already exists") and, worse, each create a pool and both take its one slot.
    with DagsterInstance.from_config(str(path)) as instance:
        if instance.get_concurrency_config().pool_config.default_pool_limit is None:
            return path  # no pool limits: connections take turns through their file locks
        for pool in (connection.pool for connection in load_connections(PROVIDERS, environ)):
            if pool not in instance.event_log_storage.get_concurrency_keys():
                instance.event_log_storage.set_concurrency_slots(pool, 1)
    return path
