import datetime as dt
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from completions_assets.providers.bindbee import BINDBEE_SCHEMA
from completions_assets.storage import TEMP_PREFIX, ParquetStorage

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 1)


def table(ids: list[str]) -> pa.Table:
    rows = [{name: None for name in BINDBEE_SCHEMA.names} | {"id": i} for i in ids]
    return pa.Table.from_pylist(rows, schema=BINDBEE_SCHEMA)


def test_write_uses_the_hive_layout_and_reads_back(tmp_path):
    storage = ParquetStorage(root=str(tmp_path))
    path = storage.write("bindbee_completions", DAY, table(["a", "b"]), BINDBEE_SCHEMA)
    assert path == str(tmp_path / "bindbee_completions" / "date=2024-03-01" / "data.parquet")
    assert storage.read("bindbee_completions", DAY).equals(table(["a", "b"]))
    assert storage.read("bindbee_completions", DAY + dt.timedelta(days=1)) is None


def test_same_table_gives_byte_identical_files(tmp_path):
    storage = ParquetStorage(root=str(tmp_path))
    path = storage.write("bindbee_completions", DAY, table(["a", "b"]), BINDBEE_SCHEMA)
    first = open(path, "rb").read()
    storage.write("bindbee_completions", DAY, table(["a", "b"]), BINDBEE_SCHEMA)
    assert open(path, "rb").read() == first


def test_rewrite_replaces_exactly_that_file_and_cleans_stale_temporaries(tmp_path):
    storage = ParquetStorage(root=str(tmp_path))
    other = storage.write("bindbee_completions", DAY + dt.timedelta(days=1), table(["x"]), BINDBEE_SCHEMA)
    other_bytes = open(other, "rb").read()
    path = storage.write("bindbee_completions", DAY, table(["a"]), BINDBEE_SCHEMA)
    stale = os.path.join(os.path.dirname(path), f"{TEMP_PREFIX}killed.parquet")
    open(stale, "wb").write(b"PAR1 half a file")
    storage.write("bindbee_completions", DAY, table(["b"]), BINDBEE_SCHEMA)
    assert storage.read("bindbee_completions", DAY)["id"].to_pylist() == ["b"]
    assert not os.path.exists(stale)
    assert open(other, "rb").read() == other_bytes


def test_a_table_of_the_wrong_schema_leaves_the_old_file(tmp_path):
    storage = ParquetStorage(root=str(tmp_path))
    path = storage.write("bindbee_completions", DAY, table(["a"]), BINDBEE_SCHEMA)
    before = open(path, "rb").read()
    with pytest.raises((pa.ArrowInvalid, ValueError, KeyError)):
        storage.write("bindbee_completions", DAY, pa.table({"id": [1]}), BINDBEE_SCHEMA)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(os.path.dirname(path))) == ["_write.lock", "data.parquet"]


def test_the_tree_reads_as_one_hive_dataset_skipping_temporaries(tmp_path):
    storage = ParquetStorage(root=str(tmp_path))
    for offset, ids in enumerate([["a"], [], ["b", "c"]]):
        storage.write("bindbee_completions", DAY + dt.timedelta(days=offset), table(ids), BINDBEE_SCHEMA)
    open(tmp_path / "bindbee_completions" / "date=2024-03-01" / f"{TEMP_PREFIX}x.parquet", "wb").write(b"junk")
    dataset = ds.dataset(tmp_path / "bindbee_completions", format="parquet", partitioning="hive")
    rows = dataset.to_table().sort_by("id")
    assert rows["id"].to_pylist() == ["a", "b", "c"]
    assert [str(d) for d in rows["date"].to_pylist()] == ["2024-03-01", "2024-03-03", "2024-03-03"]
