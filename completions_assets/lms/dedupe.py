"""The one dedupe policy: of several rows with the same key, the latest version wins."""

import pyarrow as pa
import pyarrow.compute as pc


def keep_latest(table: pa.Table, keys: list[str], version: str) -> pa.Table:
    """One row per `keys`: the one with the greatest `version` (nulls lose)."""
    if table.num_rows == 0:
        return table
    order = [(key, "ascending", "at_end") for key in keys] + [(version, "descending", "at_end")]
    ranked = table.take(pc.sort_indices(table, sort_keys=order))
    first = pa.array([True] + [False] * (ranked.num_rows - 1))
    for key in keys:
        column = ranked[key].combine_chunks()
        changed = pc.not_equal(column[1:], column[:-1]).fill_null(True)
        first = pc.or_(first, pa.concat_arrays([pa.array([True]), changed]))
    return ranked.filter(first)
