"""The demo's run with recognisable fake credentials leaves no trace of them: a byte
search of the whole DAGSTER_HOME (event log and run databases, compute logs), the data
root and everything the run and the report printed finds none, in any common encoding."""

import base64
import datetime as dt
import io
import json
import sqlite3
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from completions_assets.connections import FILE_VARIABLE
from completions_assets.local import demo
from completions_assets.local.launch import example_connections, prepare_dagster_home, sandbox_environment
from completions_assets.local.run_report import day_reports, format_table
from completions_assets.providers import PROVIDERS
from completions_assets.sandbox import SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage

pytestmark = pytest.mark.e2e

SECRETS = {
    "BINDBEE_API_KEY": "FAKE-bindbee-key+Qz7/W9x=",
    "BINDBEE_CONNECTOR_TOKEN_ACME": "FAKE-acme-token&V4r=8",
    "BINDBEE_CONNECTOR_TOKEN_GLOBEX": "FAKE-globex-token&V4r=9",
    "BINDBEE_CONNECTOR_TOKEN_INITECH": "FAKE-initech-token&V4r=0",
    "NEXUDUS_USERNAME_LONDON": "fake.probe+london@example.com",
    "NEXUDUS_PASSWORD_LONDON": "FAKE-nexudus pass%&=?Pw",
    "NEXUDUS_ACCESS_TOKEN_PARIS": "FAKE-paris-static/token=+1",
}


def encodings(secret: str) -> set[bytes]:
    raw = secret.encode()
    forms = {
        raw,
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    }
    return {form for form in forms if len(form) >= 8}


def every_file(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


def database_values(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every value of every table, zlib blobs inflated: Dagster compresses its snapshots
    (job, execution plan, resource config), which a byte search of the file cannot see."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        tables = [name for (name,) in connection.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for row in connection.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        try:
                            value = zlib.decompress(value)
                        except zlib.error:
                            pass
                        yield f"{path}:{table}", value
                    elif isinstance(value, str):
                        yield f"{path}:{table}", value.encode()
    finally:
        connection.close()


def test_no_credential_reaches_dagster_home_the_data_or_the_output(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # the sandbox accepts these instead of its defaults
    monkeypatch.delenv("NEXUDUS_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv(FILE_VARIABLE, raising=False)
    path, connections = example_connections()  # the demo's five connections
    last = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=demo.DAYS - 1)
    served = {p.name: tuple(c.name for c in connections if c.provider is p) for p in PROVIDERS}
    config = SandboxConfig(
        start_date=first - dt.timedelta(days=2), days=demo.DAYS + 4, records_per_day=40, connections=served
    )
    home = prepare_dagster_home(tmp_path / "home", environ={FILE_VARIABLE: path})
    data = tmp_path / "data"
    with start_sandbox(config) as sb:
        env = sandbox_environment(sb.base_url, connections=connections) | {
            "DAGSTER_HOME": str(home),
            "COMPLETIONS_DATA_ROOT": str(data),
            FILE_VARIABLE: path,
        }
        assert all(env[name] == value for name, value in SECRETS.items())  # the run uses the fakes
        log = home / "demo-run.log"
        assert demo.materialize_range(first, last, env, log) == 0, log.read_text()[-3000:]
        issued = sb.app.tokens.issued()  # what the Nexudus client held
        assert issued and sb.stats()["token"]["requests"] >= 1

    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    reports = day_reports(
        instance,
        run.run_id,
        [first + dt.timedelta(days=i) for i in range(demo.DAYS)],
        ParquetStorage(root=str(data)),
        connections,
    )
    printed = io.StringIO()
    with redirect_stdout(printed):
        print(format_table(reports))
    instance.dispose()
    assert all(report.passed and not report.failed for report in reports)
    assert all(report.rows[c.label] is not None for report in reports for c in connections)

    haystacks = {str(path): path.read_bytes() for path in every_file(home, data)}
    for database in home.rglob("*.db"):
        for where, value in database_values(database):
            haystacks[where] = haystacks.get(where, b"") + b"\n" + value
    for parquet in data.rglob("*.parquet"):  # zstd pages: search the decoded rows and metadata too
        table = pq.read_table(parquet)
        haystacks[f"{parquet} (decoded)"] = (
            json.dumps(table.to_pylist(), default=str, ensure_ascii=False).encode()
            + str(table.schema.metadata).encode()
        )
    haystacks["printed report"] = printed.getvalue().encode()
    assert len(list(home.rglob("*.db"))) >= 3 and list(home.rglob("compute_logs/*"))
    # The search does see the databases' compressed snapshots: a job snapshot names every
    # connection's step output.
    assert any(
        b"bindbee_completions__globex" in content
        for where, content in haystacks.items()
        if where.endswith(":snapshots")
    )
    needles = {form: name for name, secret in SECRETS.items() for form in encodings(secret)}
    needles |= {token.encode(): "an issued Nexudus token" for token in issued}
    hits = sorted(
        {(where, needles[needle]) for where, content in haystacks.items() for needle in needles if needle in content}
    )
    assert not hits, hits


@pytest.mark.parametrize("secret", list(SECRETS.values()))
def test_the_fake_credentials_are_findable_when_present(secret):
    # Guards the search itself: every encoded form is found in a blob that holds it.
    for form in encodings(secret):
        assert form in b"prefix " + form + b" suffix"
