"""What a run's forkserver imports once, before it forks any step process: the code
location, the storage of the instance (SQLite locally, PostgreSQL in production) and
what pyarrow imports lazily.
A spawned step process imports all of it again (about 1.5 CPU seconds per step).

Never raises: the forkserver tolerates only an ImportError in a preloaded module, and a
step process that finds something not imported imports it itself and reports any error
as its own step failure.
"""

import contextlib

with contextlib.suppress(Exception):
    import completions_assets.definitions  # noqa: F401
with contextlib.suppress(Exception):
    import dagster._core.storage.sqlite_storage  # noqa: F401
with contextlib.suppress(Exception):
    import dagster_postgres  # noqa: F401
with contextlib.suppress(Exception):
    # Imported by pyarrow on a step's first Parquet write and first join (about half a
    # CPU second in each step process otherwise).
    import pandas  # type: ignore[import-untyped]  # noqa: F401
    import pyarrow.dataset  # noqa: F401
