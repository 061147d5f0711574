"""One Parquet file per asset and day, in a hive layout, replaced atomically.

    {root}/{asset}/date={YYYY-MM-DD}/data.parquet
    {root}/{asset}/data.parquet               (an unpartitioned asset: day None)

A reader sees the previous file or the new one, never a part: locally the bytes
go to a `_`-prefixed temporary file (hive readers skip it) that is fsynced and
renamed over the target; on an object store the whole file is one PUT.
"""

import datetime as dt
import fcntl
import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableResource

FILE_NAME = "data.parquet"
TEMP_PREFIX = "_tmp-"
LOCK_NAME = "_write.lock"


def parquet_bytes(table: pa.Table) -> bytes:
    """Serialise with fixed writer settings, so equal tables give equal bytes."""
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=1_000_000,
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )
    return sink.getvalue()


def partition_dir(root: str, asset: str, day: dt.date | None) -> str:
    if day is None:
        return f"{root.rstrip('/')}/{asset}"
    return f"{root.rstrip('/')}/{asset}/date={day.isoformat()}"


class ParquetStorage(ConfigurableResource):
    """Reads and atomically writes the Parquet file of one asset and day."""

    root: str = "./data"

    @property
    def _is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def _root(self) -> str:
        if self._is_local:
            return os.path.abspath(self.root.removeprefix("file://"))
        return self.root.rstrip("/")

    def path(self, asset: str, day: dt.date | None) -> str:
        """Where the file of `asset` for `day` lives (a local path or a URL)."""
        return f"{partition_dir(self._root(), asset, day)}/{FILE_NAME}"

    def write(self, asset: str, day: dt.date | None, table: pa.Table, schema: pa.Schema) -> str:
        """Replace the day's file with `table` (cast to `schema`); returns its path."""
        data = parquet_bytes(table.cast(schema))
        target = self.path(asset, day)
        if self._is_local:
            _replace_local(target, data)
        else:
            fs, fs_path = _filesystem(target)
            fs.pipe_file(fs_path, data)
        return target

    def read(self, asset: str, day: dt.date | None, columns: list[str] | None = None) -> pa.Table | None:
        """The day's table (or just `columns`), or None when the day was never written."""
        target = self.path(asset, day)
        if self._is_local:
            if not os.path.exists(target):
                return None
            return _read_parquet(target, columns)
        fs, fs_path = _filesystem(target)
        try:
            # One GET, no existence check first: a cached listing could miss a file
            # that another process wrote since.
            data = fs.cat_file(fs_path)
        except FileNotFoundError:
            return None
        return _read_parquet(pa.BufferReader(data), columns)


def _read_parquet(source: str | pa.BufferReader, columns: list[str] | None) -> pa.Table:
    # One file, not a dataset: `pq.read_table` would set up dataset discovery for
    # every read. One thread: a day file is small, and pyarrow 26 reading with its
    # thread pool sometimes aborts the interpreter at exit ("terminate called ...").
    with pq.ParquetFile(source) as file:
        return file.read(columns=columns, use_threads=False)


def _filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of a URL; endpoint and credentials come from the environment."""
    options = {}
    region = os.environ.get("AWS_REGION")
    if region and url.startswith(("s3://", "s3a://")):
        # botocore only reads AWS_DEFAULT_REGION; AWS_REGION is the standard variable
        # of the other AWS SDKs (and pyarrow), and S3-compatible servers sign with it.
        options["client_kwargs"] = {"region_name": region}
    return fsspec.core.url_to_fs(url, **options)


def _replace_local(target: str, data: bytes) -> None:
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    with _partition_lock(directory):
        _remove_stale_temporaries(directory)
        temp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}.parquet")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.remove(temp)
        _fsync_dir(directory)


@contextmanager
def _partition_lock(directory: str) -> Iterator[None]:
    # Two runs writing the same day take turns; the lock also makes it safe to
    # delete temporaries left by a writer that was killed.
    with open(os.path.join(directory, LOCK_NAME), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_stale_temporaries(directory: str) -> None:
    for name in os.listdir(directory):
        if name.startswith(TEMP_PREFIX):
            os.remove(os.path.join(directory, name))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
