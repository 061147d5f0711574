"""What a run's forkserver imports once, before it forks any step process: the code
location's modules, what the instance's storage stands on, and what pyarrow imports lazily.
A spawned step process imports all of it again (about 1.5 CPU seconds per step).

The storage: SQLAlchemy and Alembic under every SQL storage of an instance, and
`dagster_postgres` (installed with the production extra), which imports Dagster's SQL
storage modules that the SQLite storage shares. Only public modules are named; with the
production extra installed the SQLite storage then costs a step next to nothing more, and
without it about 0.2 s of Dagster's own storage modules is left to each step.

Never raises: the forkserver tolerates only an ImportError in a preloaded module, and a
step process that finds something not imported imports it itself and reports any error
as its own step failure.
"""

import contextlib

with contextlib.suppress(Exception):
    import completions_assets.definitions

    # Built and resolved here, once, for the run's environment: each step process that loads
    # the code location then finds them built (definitions.py) instead of building them again.
    completions_assets.definitions.defs().get_repository_def()
with contextlib.suppress(Exception):
    import alembic.runtime.migration  # noqa: F401
    import sqlalchemy  # noqa: F401

    import completions_assets.local.event_log  # noqa: F401  (the local instance's event log)
with contextlib.suppress(Exception):
    import dagster_postgres  # noqa: F401
with contextlib.suppress(Exception):
    # Imported by pyarrow on a step's first Parquet write and first join (about half a
    # CPU second in each step process otherwise).
    import pandas  # type: ignore[import-untyped]  # noqa: F401
    import pyarrow.dataset  # noqa: F401
