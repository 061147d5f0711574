"""A connection's turn: no two runs fetch for one connection at once.

Two holds are taken, in this order:

- the connection's pool (`bindbee-<name>`, `nexudus-<name>`) in the instance's
  storage, when the instance limits it: this binds runs on every machine that
  shares the instance (PostgreSQL). One step fetches many connections, so the
  step claims each connection's pool itself, under a claim key of its own.
- a file lock per connection: on SQLite (the local instance of `make dev` and
  `make demo`) two runs claiming a pool slot at the same instant can both get
  it, and a run killed with -9 keeps its slot until run monitoring notices. An
  exclusive `flock` has neither problem: the kernel grants it to one process at
  a time and releases it when the holder exits, however it exits.

Both waits end when `stop` is set (the step is being terminated).
"""

import fcntl
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg

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



@contextmanager
def connection_turn(
    pool: str,
    *,
    instance: dg.DagsterInstance | None = None,
    run_id: str = "",
    claim_key: str = "",
    waiting: Callable[[str], None] = lambda message: None,
    stop: threading.Event | None = None,
    directory: Path | None = None,
) -> Iterator[None]:
    """Holds connection `pool`'s turn for the duration; `waiting` hears once of each wait.

    Raises:
        Stopped: `stop` was set while waiting.
    """
    stop = stop or threading.Event()
    with ExitStack() as held:
        if instance is not None:
            held.enter_context(_pool_slot(instance, pool, run_id, claim_key, waiting, stop))
        held.enter_context(_file_lock(pool, directory or lock_dir(), waiting, stop))
        yield


@contextmanager
def _pool_slot(
    instance: dg.DagsterInstance,
    pool: str,
    run_id: str,
    claim_key: str,
    waiting: Callable[[str], None],
    stop: threading.Event,
) -> Iterator[None]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        yield
        return
    if instance.get_concurrency_config().pool_config.default_pool_limit is not None:
        storage.initialize_concurrency_limit_to_default(pool)  # a no-op once the pool has a limit
    if pool not in storage.get_concurrency_keys():
        yield  # the instance does not limit this pool
        return
    told = False
    try:
        while not (claim := storage.claim_concurrency_slot(pool, run_id, claim_key)).is_claimed:
            if not told:
                waiting(f"connection {pool} waits for its turn: its pool slot is held by another run")
                told = True
            if stop.wait(claim.sleep_interval or RECHECK_S):
                raise Stopped(pool)
        yield
    finally:
        storage.free_concurrency_slot_for_step(run_id, claim_key)


@contextmanager
def _file_lock(pool: str, directory: Path, waiting: Callable[[str], None], stop: threading.Event) -> Iterator[None]:
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
