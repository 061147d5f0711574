"""A provider is one declaration: a toy third provider, declared only in this file and served
by a test-only handler over real HTTP, gets its asset, its own check and its rows in
`lms_completions`, next to Bindbee and Nexudus, without any other module knowing it."""

import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import Field

from completions_assets.http.pagination import CursorPaginator
from completions_assets.local.run_report import check_results
from completions_assets.providers import PROVIDERS
from completions_assets.providers.checks import CheckOutcome, ProviderCheck
from completions_assets.providers.provider import FetchSettings, Provider, TimeFilter
from completions_assets.providers.ranges import DayBatch
from completions_assets.providers.records import UTC_TIMESTAMP, RecordLocator, column, timestamps
from completions_assets.providers.resource import ProviderResource
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import materialize_range, resources

pytestmark = pytest.mark.e2e

UTC = dt.timezone.utc
FIRST, LAST = dt.date(2024, 3, 4), dt.date(2024, 3, 6)
TOKEN = "toy-token-1234"


def served_records() -> list[dict[str, Any]]:
    """Three days of records; each day has one at its first microsecond and one at its last."""
    records = []
    for offset in range(3):
        midnight = dt.datetime.combine(FIRST + dt.timedelta(days=offset), dt.time(), tzinfo=UTC)
        for n, at in enumerate(
            [midnight, midnight + dt.timedelta(hours=9 + offset), midnight + dt.timedelta(days=1, microseconds=-1)]
        ):
            records.append(
                {
                    "ref": f"toy-{offset}-{n}",
                    "learner": None if (offset, n) == (1, 1) else f"learner-{n}",
                    "finished": at.isoformat().replace("+00:00", "Z"),
                    "changed": (at + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                }
            )
    return records


RECORDS = served_records()


class ToyHandler(BaseHTTPRequestHandler):
    """`GET /v2/finished?from=&to=&limit=&cursor=`: inclusive bounds, cursor = next offset."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/v2/finished" or self.headers.get("X-Toy-Token") != TOKEN:
            self.send_error(404 if url.path != "/v2/finished" else 401)
            return
        low, high = (dt.datetime.fromisoformat(query[k].replace("Z", "+00:00")) for k in ("from", "to"))
        rows = [r for r in RECORDS if low <= dt.datetime.fromisoformat(r["finished"].replace("Z", "+00:00")) <= high]
        start, limit = int(query.get("cursor", "0")), int(query["limit"])
        following = start + limit if start + limit < len(rows) else None
        body = json.dumps(
            {"items": rows[start : start + limit], "cursor": None if following is None else str(following)}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


TOY_SCHEMA = pa.schema(
    [("ref", pa.string()), ("learner", pa.string()), ("finished", UTC_TIMESTAMP), ("changed", UTC_TIMESTAMP)]
)


def parse_toy(records: list[dict[str, Any]], locator: RecordLocator, settings: "ToySettings") -> pa.Table:
    def values(key: str) -> list[Any]:
        return [record.get(key) for record in records]

    return pa.Table.from_arrays(
        [
            column(values("ref"), pa.string(), "ref", locator, required=True),
            column(values("learner"), pa.string(), "learner", locator),
            timestamps(values("finished"), "finished", locator, naive_tz="UTC", required=True),
            timestamps(values("changed"), "changed", locator, naive_tz="UTC"),
        ],
        schema=TOY_SCHEMA,
    )


class ToySettings(FetchSettings):
    base_url: str = Field(description="Toy API base URL.")
    token: str | None = Field(default=None, description="Sent as X-Toy-Token.")
    page_size: int = Field(default=2, ge=1)


def _every_row_has_a_learner(batch: DayBatch, id_column: str) -> CheckOutcome:
    missing = batch.table.filter(pc.is_null(batch.table["learner"]))
    return CheckOutcome(missing.num_rows, tuple(missing[id_column].to_pylist()))


TOY = Provider(
    name="toy",
    description="Toy completions of the day.",
    settings=ToySettings,
    path="/v2/finished",
    paginator=CursorPaginator,
    time_filter=TimeFilter("from", "to", "%Y-%m-%dT%H:%M:%S.%fZ", dt.timedelta(microseconds=1), end_inclusive=True),
    query=lambda settings: {"limit": str(settings.page_size)},
    schema=TOY_SCHEMA,
    parse=parse_toy,
    documented_fields=frozenset(TOY_SCHEMA.names),
    id_column="ref",
    event_column="finished",
    version_column="changed",
    lms_columns={"completion_id": "ref", "user_id": "learner", "completed_at": "finished", "modified_at": "changed"},
    checks=(ProviderCheck("every_row_has_a_learner", "No toy row lacks its learner.", _every_row_has_a_learner),),
    base_url_env="TOY_BASE_URL",
    secret_env={"token": "TOY_TOKEN"},
    credential_sets=(("token",),),
    headers={"X-Toy-Token": "{token}"},
)


class ToyResource(ToySettings, ProviderResource):
    provider = TOY


@pytest.fixture()
def toy_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ToyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_third_provider_declared_here_gets_its_asset_check_and_merged_rows(sandbox, toy_server, tmp_path):
    res = resources(sandbox.base_url, str(tmp_path)) | {"toy": ToyResource(base_url=toy_server, token=TOKEN)}
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(FIRST.isoformat(), LAST.isoformat(), res, instance, providers=(*PROVIDERS, TOY))
    assert result.success

    days = [FIRST + dt.timedelta(days=i) for i in range(3)]
    storage = ParquetStorage(root=str(tmp_path))
    for offset, day in enumerate(days):
        expected = sorted(r["ref"] for r in RECORDS if r["ref"].startswith(f"toy-{offset}-"))
        raw = storage.read("toy_completions/connection=default", day)
        assert raw is not None and raw.schema.equals(TOY_SCHEMA)
        assert raw["ref"].to_pylist() == expected  # sorted by (finished, ref): the served order here
        merged = storage.read("lms_completions", day)
        toy_rows = merged.filter(pc.equal(merged["provider"], "toy")).sort_by("completion_id").to_pylist()
        assert [row["completion_id"] for row in toy_rows] == expected
        by_ref = {r["ref"]: r for r in RECORDS}
        for row in toy_rows:
            record = by_ref[row["completion_id"]]
            assert row["user_id"] == record["learner"]
            assert row["completed_at"] == dt.datetime.fromisoformat(record["finished"].replace("Z", "+00:00"))
            assert row["completion_date"] == day
        assert {"bindbee", "nexudus"} <= set(merged["provider"].to_pylist())

    evaluations = check_results(instance, result.run_id)
    toy_checks = {(e.partition, e.passed) for e in evaluations if e.check_name == "every_row_has_a_learner"}
    assert toy_checks == {(day.isoformat(), day != days[1]) for day in days}  # day 2 served a row without learner
    reconciled = {(e.partition, e.passed) for e in evaluations if e.check_name == "reconciles_with_sources"}
    assert reconciled == {(day.isoformat(), True) for day in days}
    required = {e.partition: e for e in evaluations if e.check_name == "required_fields_present"}
    assert not required[days[1].isoformat()].passed  # the merged toy row without user_id
    assert "toy:default:toy-1-1" in required[days[1].isoformat()].metadata["example_ids"].value
