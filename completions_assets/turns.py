"""A connection's turn: no two runs fetch for one connection at once.

Two holds are taken, in this order:

- the connection's pool (`bindbee-<name>`, `nexudus-<name>`) in the instance's
  storage, when the instance limits it: this binds runs and steps on every
  machine that shares the instance (PostgreSQL), Celery workers included. One
  step fetches many connections, so the step claims each connection's pool
  itself (`PoolSlots`), creating a new connection's pool from the instance's
  default limit the first time.
- a file lock per connection (`file_turn`): on SQLite (the local instance of `make dev` and
  `make demo`) two runs claiming a pool slot at the same instant can both get
  it, and a run killed with -9 keeps its slot until run monitoring notices. An
  exclusive `flock` has neither problem: the kernel grants it to one process at
  a time and releases it when the holder exits, however it exits.

"""

import fcntl
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy.exc

LOCK_DIR_VARIABLE = "COMPLETIONS_LOCK_DIR"
# How often a waiting turn looks again; the storage may ask for longer.
RECHECK_S = 0.5


def lock_dir() -> Path:
    """Where the locks live: `COMPLETIONS_LOCK_DIR`, else `$DAGSTER_HOME/locks`, else the temp dir."""
    explicit = os.environ.get(LOCK_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "locks" if home else Path(tempfile.gettempdir()) / "completions_assets-locks"


class Stopped(Exception):
    """The wait for a turn ended because the step is stopping."""


class PoolSlots:
    """Connections' pool slots in the instance's storage, claimed by one step for the connections it
    fetches, each under a claim key of its own (which run monitoring frees with the run). Used from
    the step's own thread only: the storage's connections are not shared across threads.

    The pools' limits are read once, when the step starts, as Dagster's own executor reads them
    once per run: reading them again per claim would cost each connection in proportion to the
    number of pools. A pool the instance does not limit yet gets the instance's default limit then.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str, step_key: str, pools: Iterable[str]) -> None:
        self._storage = instance.event_log_storage
        self._run_id = run_id
        self._step_key = step_key
        self._claims: set[str] = set()
        self._limited: set[str] = set()
        if self._storage.supports_global_concurrency_limits:
            default = instance.get_concurrency_config().pool_config.default_pool_limit
            self._limited = self._limit(pools, default)

    def _limit(self, pools: Iterable[str], default: int | None) -> set[str]:
        """Which of `pools` are limited, once each unlimited one has the default limit, if any."""
        limits = {limit.name: limit for limit in self._storage.get_pool_limits()}
        limited = set()
        for pool in pools:
            limit = limits.get(pool)
            # As the executor does: a pool still on the default follows a changed default.
            if default is not None and (limit is None or (limit.from_default and limit.limit != default)):
                self._initialize(pool)
                limited.add(pool)
            elif limit is not None:
                limited.add(pool)
        return limited

    def _initialize(self, pool: str) -> None:
        """Gives `pool` the instance's default limit. On PostgreSQL, of steps creating one new pool at
        the same moment (on any machines), one inserts its limit and its slot; the others' insert
        conflicts and their whole transaction is rolled back, so the pool still has one slot: they
        find it created, rather than failing."""
        try:
            self._storage.initialize_concurrency_limit_to_default(pool)
        except sqlalchemy.exc.DBAPIError:
            if not any(limit.name == pool for limit in self._storage.get_pool_limits()):
                raise

    def claim(self, pool: str) -> bool:
        """Whether connection `pool` may fetch now: its slot is claimed, or the instance does not limit it."""
        if pool not in self._limited:
            return True
        self._claims.add(pool)
        return self._storage.claim_concurrency_slot(pool, self._run_id, self._key(pool)).is_claimed

    def free(self, pool: str) -> None:
        """Gives back the slot of `pool`, or its claim still waiting."""
        if pool in self._claims:
            self._claims.discard(pool)
            self._storage.free_concurrency_slot_for_step(self._run_id, self._key(pool))

    def free_all(self) -> None:
        for pool in list(self._claims):
            self.free(pool)

    def _key(self, pool: str) -> str:
        return f"{self._step_key}[{pool}]"


@contextmanager
def file_turn(
    pool: str, waiting: Callable[[str], None], stop: threading.Event, directory: Path | None = None
) -> Iterator[None]:
    """Holds connection `pool`'s file lock for the duration; `waiting` hears once if it has to wait.

    Raises:
        Stopped: `stop` was set while waiting.
    """
    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{pool}.lock", "a") as handle:
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    waiting(f"connection {pool} waits for its turn: another run is fetching it (lock {handle.name})")
                    told = True
                # Polled rather than blocking, so that stopping the step ends the wait.
                if stop.wait(RECHECK_S):
                    raise Stopped(pool) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
