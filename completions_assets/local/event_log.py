"""The local instance's event log: Dagster's SQLite event log, with its database connections kept.

Dagster's `SqliteEventLogStorage` creates an engine and opens a connection for every event it
stores, and closes both after. Opening a SQLite database reads its schema again, and a new
engine compiles every statement again: most of what storing an event costs, and a run stores
about eight events per connection and day (a 220-connection day: 2,000). Kept, a check result is
stored in about 3 ms instead of 12 to 15 (docs/definitions.md, "The local event log keeps its
connections").

Nothing else changes: each use is one transaction, committed at its end, under the storage's own
lock, so between uses a connection holds no lock and SQLite's locking between processes is as
before. The index database's connection lives as long as the storage; runs' databases keep theirs
while among the last few used, as a long-lived process (the webserver) reads many runs. A
process forked from one that holds connections opens its own (SQLite connections must not cross
a fork), and `wipe` closes them before Dagster deletes the files.
"""

import os
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
from sqlalchemy.pool import StaticPool

# Runs' databases whose connections are kept: a run's steps write to one, the merge reads a few.
KEPT_RUN_CONNECTIONS = 8


class KeptConnectionSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` (config: `base_dir`) with one engine and connection per database."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "KeptConnectionSqliteEventLogStorage":
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
        if self._engines_pid != os.getpid():  # inherited through a fork: the parent's, not ours to use
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = self._engines[shard] = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,
            # Used by one thread at a time (the storage's lock), not always the same one.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for name in runs[: max(0, len(runs) - KEPT_RUN_CONNECTIONS)]:
            self._engines.pop(name).dispose()
        return engine

    def has_table(self, table_name: str) -> bool:
        # Asked before storing each check result and partitioned materialization, each time through
        # a connection of its own; a table, once there, stays (only migrations add them).
        if table_name not in self._tables:
            if not super().has_table(table_name):
                return False
            self._tables.add(table_name)
        return True

    def wipe(self) -> None:
        with self._db_lock:
            self._close()
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._close()
        super().dispose()

    def _close(self) -> None:
        if self._engines_pid == os.getpid():
            for engine in self._engines.values():
                engine.dispose()
        self._engines = OrderedDict()

    def kept_connections(self) -> tuple[str, ...]:
        """The databases whose connections are kept, least recently used first."""
        return tuple(self._engines)
