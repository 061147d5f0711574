"""COMPLETIONS_DATA_ROOT on an object store: runs against a real S3-compatible server
(moto's server mode on 127.0.0.1), with endpoint, credentials and region only in the
standard AWS variables."""

import datetime as dt
import threading
from collections import Counter
from urllib.parse import unquote, urlsplit

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
import s3fs

from completions_assets.providers.bindbee import BINDBEE_SCHEMA
from completions_assets.storage import ParquetStorage
from completions_assets_tests.oracle import assert_day_matches_ground_truth
from completions_assets_tests.servers import s3_bucket, s3_objects
from completions_assets_tests.support import materialize_range, resources

pytestmark = pytest.mark.e2e

BUCKET = "completions-prod"
ASSETS = ("bindbee_completions/connection=default", "nexudus_completions/connection=default", "lms_completions")
DAYS = ["2024-03-03", "2024-03-04", "2024-03-05"]


@pytest.fixture
def bucket(s3_environment) -> s3fs.S3FileSystem:
    return s3_bucket(s3_environment, BUCKET)


def objects(fs: s3fs.S3FileSystem, prefix: str) -> dict[str, bytes]:
    return s3_objects(fs, f"{BUCKET}/{prefix}")


def puts_by_key(s3_server) -> Counter:
    requests = s3_server.requests()
    assert not [r for r in requests if r["method"] == "POST"], "a multipart upload is not one PUT"
    paths = [unquote(urlsplit(r["url"]).path) for r in requests if r["method"] == "PUT"]
    return Counter(path.removeprefix(f"/{BUCKET}/") for path in paths)


def test_range_run_rerun_and_a_dataset_read_straight_from_the_bucket(sandbox, bucket, s3_server):
    root = f"s3://{BUCKET}/range"
    res = resources(sandbox.base_url, root)
    instance = dg.DagsterInstance.ephemeral()
    s3_server.reset_requests()
    result = materialize_range(DAYS[0], DAYS[-1], res, instance)
    assert result.success

    storage = ParquetStorage(root=root)
    for day in DAYS:
        assert_day_matches_ground_truth(sandbox, storage, day)
    keys = {f"range/{asset}/date={day}/data.parquet" for asset in ASSETS for day in DAYS}
    keys.add("range/nexudus_course_members/connection=default/data.parquet")  # the enrolments, unpartitioned
    before = objects(bucket, "range")
    assert set(before) == {f"{BUCKET}/{key}" for key in keys}  # the hive layout, nothing else
    assert puts_by_key(s3_server) == Counter(keys)  # each file is exactly one PUT
    signatures = {r["headers"].get("Authorization", "") for r in s3_server.requests()}
    assert all(f"/{s3_server.region}/s3/aws4_request" in s for s in signatures)  # AWS_REGION is honoured

    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("lms_completions"), asset_partitions=[DAYS[1]]),
        limit=1,
    ).records[0]
    assert record.asset_materialization.metadata["path"].value == f"{root}/lms_completions/date={DAYS[1]}/data.parquet"
    logged = dg.serialize_value(list(instance.all_logs(result.run_id)))
    for value in (s3_server.access_key_id, s3_server.secret_access_key, s3_server.endpoint_url):
        assert value not in logged

    s3_server.reset_requests()
    rerun = materialize_range(DAYS[1], DAYS[1], res, dg.DagsterInstance.ephemeral())
    assert rerun.success
    assert objects(bucket, "range") == before  # byte-identical, and only that day rewritten
    rewritten = [f"range/{asset}/date={DAYS[1]}/data.parquet" for asset in ASSETS]
    snapshot = "range/nexudus_course_members/connection=default/data.parquet"  # refreshed by every run
    assert puts_by_key(s3_server) == Counter([*rewritten, snapshot])

    # A third-party reader finds the tree with nothing but the AWS variables.
    filesystem, path = pafs.FileSystem.from_uri(f"{root}/lms_completions")
    table = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive").to_table(use_threads=False)
    per_day = [storage.read("lms_completions", dt.date.fromisoformat(day)).num_rows for day in DAYS]
    assert table.num_rows == sum(per_day) > 0
    assert sorted({str(day) for day in table["date"].to_pylist()}) == DAYS


def _table(rows: int) -> pa.Table:
    ids = [f"{rows}-{i:06d}" for i in range(rows)]
    columns = {
        name: pa.nulls(rows, field.type) for name, field in zip(BINDBEE_SCHEMA.names, BINDBEE_SCHEMA, strict=True)
    }
    return pa.table(columns | {"id": pa.array(ids, pa.string())}, schema=BINDBEE_SCHEMA)


def test_a_reader_sees_the_old_object_or_the_new_one_never_a_part(bucket):
    storage = ParquetStorage(root=f"s3://{BUCKET}/atomic")
    day = dt.date(2024, 3, 1)
    versions = [_table(20_000), _table(30_000)]
    storage.write("bindbee_completions", day, versions[0], BINDBEE_SCHEMA)
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(12):
                storage.write("bindbee_completions", day, versions[(i + 1) % 2], BINDBEE_SCHEMA)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = Counter()
    while not done.is_set():  # bounded by the writer's 12 writes
        rows = storage.read("bindbee_completions", day, columns=["id"]).num_rows
        assert rows in (20_000, 30_000)
        seen[rows] += 1
    thread.join()
    assert sum(seen.values()) > 0
    assert list(objects(bucket, "atomic")) == [f"{BUCKET}/atomic/bindbee_completions/date=2024-03-01/data.parquet"]
    assert storage.read("bindbee_completions", day).equals(versions[0])  # the last write, whole
