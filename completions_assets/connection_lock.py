"""Turns per connection on one machine: a file lock that dies with its holder.

Dagster's pools serialise steps through the instance's storage; on SQLite (the
local instance of `make dev`/`make demo`) two runs claiming a slot at the same
instant can both get it, and a run killed with -9 keeps its slot until run
monitoring frees it. An exclusive `flock` per connection has neither problem:
the kernel grants it to one process at a time and releases it when the holder
exits, however it exits.
"""

import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)
LOCK_DIR_VARIABLE = "COMPLETIONS_LOCK_DIR"


def lock_dir() -> Path:
    """Where the locks live: `COMPLETIONS_LOCK_DIR`, else `$DAGSTER_HOME/locks`, else the temp dir."""
    explicit = os.environ.get(LOCK_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "locks" if home else Path(tempfile.gettempdir()) / "completions_assets-locks"


@contextmanager
def connection_turn(name: str, directory: Path | None = None) -> Iterator[None]:
    """Holds the lock of connection `name` (its pool name) for the duration; waits for it if taken."""
    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("connection %s is fetching in another run; waiting for its turn", name)
            fcntl.flock(handle, fcntl.LOCK_EX)  # a signal (termination) interrupts this wait
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
