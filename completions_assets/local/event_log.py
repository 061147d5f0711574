"""The local instance's event log: Dagster's SQLite event log, with its SQLAlchemy engines kept.

Dagster's `SqliteEventLogStorage` creates an engine for every event it stores and disposes it
after. SQLAlchemy caches compiled statements per engine, so each event's inserts are compiled
again: a quarter of what storing an event costs, and a run stores about eight events per
connection and day (a 220-connection day: 2,000). With the engines kept, an event costs about a
third less (docs/benchmarks.md, "What one stored event costs").

Nothing else changes: connections are still opened and closed for each use (`NullPool`), under
the storage's own lock, so SQLite's locking between processes is Dagster's. The index database's
engine lives as long as the storage; runs' databases keep theirs while among the last few used,
as a long-lived process (the webserver) reads many runs.
"""

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

# Runs' databases whose engines are kept: a run's steps write to one, the merge reads a few.
KEPT_RUN_ENGINES = 8


class KeptEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` (config: `base_dir`) that creates one engine per database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "KeptEngineSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._engines[shard] = engine
        self._engines.move_to_end(shard)
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in runs[: max(0, len(runs) - KEPT_RUN_ENGINES)]:
            self._engines.pop(name).dispose()
        return engine

    def kept_engines(self) -> tuple[str, ...]:
        """The databases whose engines are kept, least recently used first."""
        return tuple(self._engines)
