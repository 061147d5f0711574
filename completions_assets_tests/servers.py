"""Real servers for the production-profile tests, on 127.0.0.1, each stopped by its PID.

- `s3_server`: moto's server mode, an S3-compatible object store that records
  every request it serves (so tests can see what went over the wire).
- `postgres_server`: PostgreSQL from the binaries that the `pgserver` wheel
  ships (installed by `make test`), or the system's when that wheel is absent.
  PostgreSQL refuses to run as root, so under root it runs as `nobody`.
- `redis_server`: Debian's `redis-server`, the Celery profile's broker. Where it
  is missing it is installed with apt-get (as root); a test that needs it is
  skipped, saying why, only where that fails.

S3 and PostgreSQL come from the `test` extra of pyproject.toml.
"""

import glob
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg2
import pytest
import s3fs

READY_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    """Poll `ready` until it holds; bounded, and fails at once if `process` died."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT_S} s")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- S3 -----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    recording: Path
    # Any key is accepted; these are distinctive so tests can look for leaks.
    access_key_id: str = "AKIACOMPLETIONSTEST"
    secret_access_key: str = "s3-secret-that-must-never-leak"
    region: str = "eu-west-1"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables, the only way the project is told about S3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
        }

    def reset_requests(self) -> None:
        httpx.post(f"{self.endpoint_url}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()

    def requests(self) -> list[dict]:
        """Method, path and headers of each request served since the last reset."""
        if not self.recording.exists():
            return []
        lines = self.recording.read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "body"} for line in lines]


@pytest.fixture
def s3_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """This test's process pointed at the S3 server through the AWS variables alone."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # fsspec caches filesystems, each built from the environment of its time.
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


def s3_bucket(s3_environment: S3Server, name: str) -> s3fs.S3FileSystem:
    """A filesystem on the S3 server (through the AWS variables alone) in which bucket `name` exists."""
    fs = s3fs.S3FileSystem(client_kwargs={"region_name": s3_environment.region})
    if not fs.exists(name):
        fs.mkdir(name, region_name=s3_environment.region)
    return fs


def s3_objects(fs: s3fs.S3FileSystem, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` ("bucket/path") and its bytes, read afresh."""
    fs.invalidate_cache()
    return {key: fs.cat_file(key) for key in fs.find(prefix)}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    port = free_port()
    recording = tmp_path_factory.mktemp("moto") / "requests.jsonl"
    env = os.environ | {"MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(recording)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(f"http://127.0.0.1:{port}", recording)

    def ready() -> bool:
        try:
            return httpx.get(f"{server.endpoint_url}/moto-api/data.json", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, process, "moto server")
        yield server
    finally:
        stop(process)


# --- PostgreSQL ---------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db: str

    def environment(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables that deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db,
        }

    def connect(self, db: str | None = None):
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=db or self.db,
            connect_timeout=5,
        )

    def fresh_database(self, name: str) -> dict[str, str]:
        """Database `name` created anew (empty); the DAGSTER_PG_* variables that point at it."""
        connection = self.connect("postgres")
        try:
            connection.autocommit = True
            connection.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            connection.cursor().execute(f"CREATE DATABASE {name}")
        finally:
            connection.close()
        return self.environment() | {"DAGSTER_PG_DB": name}


def postgres_bin(workdir: Path) -> Path:
    """The directory of initdb and postgres, runnable by the account the server runs as."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:  # no wheel for this Python
        found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
        if found is None:
            raise RuntimeError("no PostgreSQL binaries: install the test extra (pgserver) or a PostgreSQL server")
        return Path(found).resolve().parent
    site = Path(spec.submodule_search_locations[0]).parent
    if os.geteuid() != 0:
        return site / "pgserver" / "pginstall" / "bin"
    # `nobody` may not be able to enter the venv's directory: run a copy, keeping the
    # layout that the binaries' RPATH ($ORIGIN/../../../pgserver.libs) expects.
    copy = workdir / "site"
    shutil.copytree(
        site / "pgserver" / "pginstall", copy / "pgserver" / "pginstall", ignore=shutil.ignore_patterns("include")
    )
    shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")
    return copy / "pgserver" / "pginstall" / "bin"


def server_account(workdir: Path) -> dict:
    """Popen arguments that run PostgreSQL as a non-root user (it refuses root)."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    for path in (workdir, workdir / "pwfile"):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    workdir = Path(tempfile.mkdtemp(prefix="completions-pg-"))
    password = secrets.token_urlsafe(16)
    (workdir / "pwfile").write_text(password + "\n")
    server = PostgresServer("127.0.0.1", free_port(), "dagster", password, "dagster_prod")
    process = None
    try:
        bin_dir, account = postgres_bin(workdir), server_account(workdir)
        initdb = subprocess.run(
            [
                bin_dir / "initdb",
                "-D",
                workdir / "data",
                "-U",
                server.user,
                "--pwfile",
                workdir / "pwfile",
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            **account,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr[-2000:]}")
        process = subprocess.Popen(
            [
                bin_dir / "postgres",
                "-D",
                workdir / "data",
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-k",
                workdir,
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **account,
        )
        wait_until(lambda: _accepts(server), process, "postgres")
        connection = server.connect("postgres")
        try:
            connection.autocommit = True
            connection.cursor().execute(f"CREATE DATABASE {server.db}")
        finally:
            connection.close()
        yield server
    finally:
        if process is not None:
            stop(process, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(workdir, ignore_errors=True)


def _accepts(server: PostgresServer) -> bool:
    try:
        server.connect("postgres").close()
        return True
    except psycopg2.OperationalError:
        return False


# --- Redis --------------------------------------------------------------------


def redis_binary() -> str | None:
    """`redis-server`, installed from Debian's package first where it is missing and this is root."""
    found = shutil.which("redis-server")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 600}
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], env=env, **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "redis-server"], env=env, **quiet)  # type: ignore[call-overload]
    return shutil.which("redis-server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A Redis on 127.0.0.1 that keeps nothing on disk; yields its URL without a database number."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server is not installed and could not be installed with apt-get (needs root and apt-get)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_until(ready, process, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(process)
