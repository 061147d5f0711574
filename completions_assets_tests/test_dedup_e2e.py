"""One completion served twice, the second copy modified later (updated between two page
reads): a range run ends with exactly one row for it in `lms_completions`, and it is
the newer copy. Nexudus is the provider that gets this (offset paging); a duplicated
Bindbee day is not merged at all (its blocking `no_duplicate_ids` check)."""

import datetime as dt
import json

import dagster as dg
import httpx
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from completions_assets.sandbox import ProviderFaults, Sandbox, SandboxConfig, start_sandbox
from completions_assets.storage import ParquetStorage
from completions_assets_tests.support import materialize_range, resources

pytestmark = pytest.mark.e2e

NEXUDUS_PATH = "/api/content/coursecompletedlessons"
FIRST, LAST = "2024-03-03", "2024-03-05"  # three days: one request window, its pages one at a time
RANGE_START = dt.datetime(2024, 3, 3, tzinfo=dt.timezone.utc)
RANGE_END = dt.datetime(2024, 3, 6, tzinfo=dt.timezone.utc)
CONFIG = SandboxConfig(
    seed=23,
    start_date=dt.date(2024, 3, 1),
    days=8,
    records_per_day=80,
    now=dt.datetime(2024, 4, 1, tzinfo=dt.timezone.utc),
)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


class PageLog:
    """The records of every Nexudus data page the sandbox served, in request order
    (the order the sandbox's fault knobs count in)."""

    def __init__(self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pages: list[list[dict]] = []
        handle = sandbox.app.handle

        def logged(method, path, params, headers, body):
            bucket, reply = handle(method, path, params, headers, body)
            if path == NEXUDUS_PATH:
                self.pages.append(json.loads(reply.body)["Records"] if reply.status == 200 else [])
            return bucket, reply

        monkeypatch.setattr(sandbox.app, "handle", logged)  # the server calls it through the instance


def run(sandbox: Sandbox, root: str) -> dg.ExecuteInProcessResult:
    in_turn = {"max_concurrent_requests": 1}  # so the sandbox counts pages in page order
    res = resources(sandbox.base_url, root, nexudus=in_turn)
    result = materialize_range(FIRST, LAST, res, dg.DagsterInstance.ephemeral())
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations  # the checks ran
    failed = [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed]
    assert failed == []
    return result


def test_the_newer_copy_of_a_completion_served_twice_is_the_one_kept(tmp_path, monkeypatch):
    with start_sandbox(CONFIG) as sandbox:
        log = PageLog(sandbox, monkeypatch)
        # A clean run shows which request serves which page: pick the first page after
        # the first whose leading record lies inside the range (not only in the margin).
        run(sandbox, str(tmp_path / "clean"))
        inside = [
            n
            for n, records in enumerate(log.pages, start=1)
            if n > 1 and records and RANGE_START <= utc(records[0]["CreatedOn"]) < RANGE_END
        ]
        assert inside, "no page starts inside the range: change CONFIG"
        k = inside[0]

        log.pages.clear()
        sandbox.update(nexudus=ProviderFaults(duplicate_on=k, duplicate_newer=True))
        root = str(tmp_path / "dup")
        run(sandbox, root)

    # The sandbox served the record twice on page k, the older copy first.
    page = log.pages[k - 1]
    older, newer = page[0], page[-1]
    assert older["Id"] == newer["Id"] and [r["Id"] for r in page].count(older["Id"]) == 2
    assert utc(newer["UpdatedOn"]) > utc(older["UpdatedOn"])
    assert {**newer, "UpdatedOn": None} == {**older, "UpdatedOn": None}

    storage = ParquetStorage(root=root)
    day = utc(older["CreatedOn"]).date()
    merged = storage.read("lms_completions", day)
    assert merged is not None
    nexudus = merged.filter(pc.equal(merged["provider"], "nexudus"))
    rows = nexudus.filter(pc.equal(nexudus["completion_id"], str(older["Id"]))).to_pylist()
    assert [row["modified_at"] for row in rows] == [utc(newer["UpdatedOn"])]  # one row, the newer
    # The provider's own files too (read as the hive tree they are, whatever its partition
    # keys): its client keeps the latest copy of a page walk.
    raw = ds.dataset(f"{root}/nexudus_completions", format="parquet", partitioning="hive")
    raw_rows = raw.to_table(columns=["updated_on"], filter=pc.field("id") == older["Id"], use_threads=False)
    assert raw_rows["updated_on"].to_pylist() == [utc(newer["UpdatedOn"])]
    # ...and nothing else was lost or doubled: one row per id the provider holds for the day.
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    truth = sandbox.dataset.ground_truth("nexudus", start, start + dt.timedelta(days=1))
    assert sorted(nexudus["completion_id"].to_pylist()) == sorted(truth)


# --- the sandbox knob itself, over HTTP --------------------------------------------


@pytest.mark.parametrize(("provider", "naive"), [("bindbee", False), ("nexudus", False), ("nexudus", True)])
def test_duplicate_newer_repeats_the_first_record_last_and_modified_later(provider, naive):
    path, key, modified = {
        "bindbee": ("/api/lms/v1/completions", "items", "modified_at"),
        "nexudus": (NEXUDUS_PATH, "Records", "UpdatedOn"),
    }[provider]
    # Naive: Nexudus times without an offset (`nexudus_naive_timestamps`), which must stay so.
    config = SandboxConfig(
        days=3, records_per_day=30, now=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), nexudus_naive_timestamps=naive
    )
    with start_sandbox(config) as sandbox:
        creds = sandbox.credentials
        token = creds["BINDBEE_API_KEY" if provider == "bindbee" else "NEXUDUS_ACCESS_TOKEN"]
        headers = {"Authorization": f"Bearer {token}", "x-connector-token": creds["BINDBEE_CONNECTOR_TOKEN"]}
        sandbox.update(**{provider: ProviderFaults(duplicate_on=2, duplicate_newer=True)})
        with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10) as client:
            clean, doubled = (client.get(path).json()[key] for _ in range(2))
    repeat = doubled[-1]
    assert doubled[:-1] == clean
    assert {**repeat, modified: None} == {**clean[0], modified: None}
    # Same wire form (Z-suffixed, or naive wall time), one hour later.
    assert repeat[modified].endswith("Z") == clean[0][modified].endswith("Z")
    later = dt.datetime.fromisoformat(repeat[modified]) - dt.datetime.fromisoformat(clean[0][modified])
    assert later == dt.timedelta(hours=1)
