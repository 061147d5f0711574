"""A write that fails part way leaves the previous file: byte-identical, readable, and
nothing but `_`-prefixed leftovers (hive readers skip them), which the next
successful write of that day removes. Locally and on an object store."""

import builtins
import datetime as dt
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import s3fs

from completions_assets.storage import ParquetStorage
from completions_assets_tests.servers import s3_bucket, s3_objects

pytestmark = pytest.mark.e2e

ASSET = "bindbee_completions"
DAY = dt.date(2024, 3, 1)
BUCKET = "completions-atomic"


# Storage takes any schema; one of its own keeps this test off the providers' modules.
SCHEMA = pa.schema([("id", pa.string()), ("completed_at", pa.timestamp("us", tz="UTC")), ("score", pa.float64())])


def table(prefix: str, rows: int) -> pa.Table:
    # Thousands of rows: a file large enough that half of it is a real, cut Parquet file.
    ids = pa.array([f"{prefix}-{i:06d}" for i in range(rows)], pa.string())
    return pa.table(
        {
            "id": ids,
            "completed_at": pa.nulls(rows, SCHEMA.field("completed_at").type),
            "score": pa.nulls(rows, pa.float64()),
        },
        schema=SCHEMA,
    )


OLD, NEW, NEWER = table("old", 5_000), table("new", 7_000), table("newer", 3_000)


def holds(storage: ParquetStorage, table: pa.Table) -> bool:
    """The day's file reads back as exactly `table`."""
    stored = storage.read(ASSET, DAY)
    return stored is not None and stored.equals(table)


class InjectedFailure(OSError):
    """The failure these tests inject; any other exception is a real error."""


@pytest.fixture
def local(tmp_path) -> tuple[ParquetStorage, str, bytes, set[str]]:
    """A day already written once: its storage, file path, bytes, and the directory's names."""
    storage = ParquetStorage(root=str(tmp_path / "data"))
    path = storage.write(ASSET, DAY, OLD, SCHEMA)
    return storage, path, Path(path).read_bytes(), set(os.listdir(os.path.dirname(path)))


def assert_previous_file_intact(storage: ParquetStorage, path: str, before: bytes, baseline: set[str]) -> set[str]:
    """The old bytes and rows are there, and whatever else appeared is `_`-prefixed; returns the leftovers."""
    assert Path(path).read_bytes() == before
    assert holds(storage, OLD)
    directory = os.path.dirname(path)
    leftovers = set(os.listdir(directory)) - baseline
    assert all(name.startswith("_") for name in leftovers), leftovers
    # What a hive reader of the asset's tree sees: the old rows only.
    tree = ds.dataset(os.path.dirname(directory), format="parquet", partitioning="hive")
    assert tree.to_table(columns=["id"], use_threads=False)["id"].to_pylist() == OLD["id"].to_pylist()
    return leftovers


def assert_next_write_cleans_up(storage: ParquetStorage, path: str, baseline: set[str]) -> None:
    storage.write(ASSET, DAY, NEWER, SCHEMA)
    assert holds(storage, NEWER)
    assert set(os.listdir(os.path.dirname(path))) == baseline


def test_a_write_cut_half_way_leaves_the_previous_file(local, monkeypatch):
    storage, path, before, baseline = local
    real_open = builtins.open
    partition = os.path.dirname(path)

    class HalfThenFail:
        """A file handle whose write puts half the bytes on disk, then fails (a full disk)."""

        def __init__(self, handle):
            self._handle = handle

        def write(self, data):
            self._handle.write(bytes(data)[: len(data) // 2])
            self._handle.flush()
            raise InjectedFailure(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self._handle.close()

    def failing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        # Only writes into this partition fail; the lock file is opened for append.
        if "w" in mode and isinstance(file, (str, os.PathLike)) and os.path.dirname(os.path.abspath(file)) == partition:
            return HalfThenFail(handle)
        return handle

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", failing_open)
        with pytest.raises(InjectedFailure):
            storage.write(ASSET, DAY, NEW, SCHEMA)
    assert_previous_file_intact(storage, path, before, baseline)
    assert_next_write_cleans_up(storage, path, baseline)


def test_a_failing_fsync_leaves_the_previous_file(local, monkeypatch):
    storage, path, before, baseline = local

    def failing_fsync(fd: int) -> None:
        # The bytes were written in full but cannot be made durable (an I/O error).
        raise InjectedFailure(errno.EIO, "fsync failed")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(InjectedFailure):
            storage.write(ASSET, DAY, NEW, SCHEMA)
    assert_previous_file_intact(storage, path, before, baseline)
    assert_next_write_cleans_up(storage, path, baseline)


# A writer killed half way (kill -9: no `finally`, no cleanup) in a process of its own.
_KILLED_WRITER = textwrap.dedent("""
    import builtins, datetime, os, signal, sys
    import pyarrow as pa
    from completions_assets.storage import ParquetStorage

    root, asset, day, partition, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    real_open = builtins.open

    class Killed:
        def __init__(self, handle):
            self._handle = handle
        def write(self, data):
            self._handle.write(bytes(data)[: len(data) // 2])
            self._handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        def __getattr__(self, name):
            return getattr(self._handle, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc_info):
            self._handle.close()

    def killing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and os.path.dirname(os.path.abspath(file)) == partition:
            return Killed(handle)
        return handle

    builtins.open = killing_open
    table = pa.table({"id": pa.array([f"new-{i:06d}" for i in range(rows)], pa.string())})
    ParquetStorage(root=root).write(asset, datetime.date.fromisoformat(day), table, table.schema)
    sys.exit("the write finished: the kill never happened")
""")


def test_a_writer_killed_half_way_leaves_the_previous_file(local):
    storage, path, before, baseline = local
    partition = os.path.dirname(path)
    args = [storage.root, ASSET, DAY.isoformat(), partition, str(NEW.num_rows)]
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    leftovers = assert_previous_file_intact(storage, path, before, baseline)
    assert leftovers, "nothing left behind to clean up: the cleanup below would go untested"
    assert_next_write_cleans_up(storage, path, baseline)


# --- object store -------------------------------------------------------------

# Every S3 call that creates or replaces an object's content.
_WRITES = ("put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload", "copy_object")


@pytest.fixture
def bucket(s3_environment) -> s3fs.S3FileSystem:
    return s3_bucket(s3_environment, BUCKET)


def objects(fs: s3fs.S3FileSystem, prefix: str) -> dict[str, bytes]:
    return s3_objects(fs, f"{BUCKET}/{prefix}")


def test_a_failed_put_leaves_the_previous_object(bucket, monkeypatch):
    root = f"s3://{BUCKET}/failed-put"
    storage = ParquetStorage(root=root)
    key = f"{BUCKET}/failed-put/{ASSET}/date={DAY.isoformat()}/data.parquet"
    storage.write(ASSET, DAY, OLD, SCHEMA)
    before = objects(bucket, "failed-put")
    assert list(before) == [key]

    real_call = s3fs.S3FileSystem._call_s3
    attempted = []

    async def failing_writes(self, method, *args, **kwargs):
        # The connection drops on the upload: S3 stores nothing of it. Reads and
        # deletes go through, so a delete-then-upload would show.
        if method in _WRITES:
            attempted.append(method)
            raise InjectedFailure(errno.ECONNRESET, f"connection reset during {method}")
        return await real_call(self, method, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(s3fs.S3FileSystem, "_call_s3", failing_writes)
        with pytest.raises(InjectedFailure):
            storage.write(ASSET, DAY, NEW, SCHEMA)
    assert attempted  # the upload itself failed, not something before it
    after = objects(bucket, "failed-put")
    assert after.get(key) == before[key], "the previous object is gone or changed"
    assert all(k.rsplit("/", 1)[-1].startswith("_") for k in set(after) - {key})
    assert holds(storage, OLD)

    storage.write(ASSET, DAY, NEWER, SCHEMA)
    assert list(objects(bucket, "failed-put")) == [key]
    assert holds(storage, NEWER)
