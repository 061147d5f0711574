"""A window's rows on local disk: written a parsed batch at a time, read back when its days are cut.

Records then cost memory only between their page's arrival and their batch's
write, not until their day is complete. Connections fetching side by side thus
each hold their pages in flight rather than their days, so rate-limited
connections walk at once whatever the size of their days, and a step's memory
follows the days being cut and written (under its records budget).
The files are Arrow IPC, uncompressed: written and read back within seconds, in
a directory of the system's temporary directory (`TMPDIR`) named after the
process, removed when the range is done; a process killed before that leaves
its directory to the next one, which removes it.
"""

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa
import pyarrow.compute as pc

from completions_assets.providers.planning import Window


def window_files_dir(provider: str) -> Path:
    """A new directory for one range's window files, once the directories of processes that
    died before removing theirs are gone."""
    root = Path(tempfile.gettempdir())
    pattern = re.compile(rf"completions-{re.escape(provider)}-(\d+)-")
    for leftover in root.glob(f"completions-{provider}-*"):
        found = pattern.match(leftover.name)
        if found and not _alive(int(found.group(1))):
            shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"completions-{provider}-{os.getpid()}-", dir=root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@dataclass(frozen=True)
class SpilledRows:
    """The rows a window kept, on disk (no file when it kept none)."""

    path: Path | None
    rows: int
    schema: pa.Schema

    def read(self) -> pa.Table:
        if self.path is None:
            return self.schema.empty_table()
        with pa.OSFile(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all()

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class WindowRows:
    """The rows of one window inside its window, written as their batches are parsed. Thread-safe
    (Nexudus parses stretches of pages on several threads)."""

    def __init__(
        self,
        path: Path,
        window: Window,
        schema: pa.Schema,
        *,
        id_column: str,
        event_column: str,
        give: Callable[[int], None],
    ) -> None:
        self._path = path
        self._window = window
        self._schema = schema
        self._id = id_column
        self._event = event_column
        self._give = give
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._rows = 0
        self._lock = threading.Lock()

    def add(self, parsed: pa.Table) -> pa.Table:
        """Writes the rows of `parsed` inside the window and gives back the room its records held.

        Returns what was served, every row's id and event time (the window's checks read them).
        """
        kept = trim(parsed, self._window, self._event)
        if kept.num_rows:
            with self._lock:
                if self._writer is None:
                    self._writer = pa.ipc.new_file(str(self._path), self._schema)
                self._writer.write_table(kept)
                self._rows += kept.num_rows
        served = parsed.select([self._id, self._event])
        self._give(parsed.num_rows)
        return served

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()

    def spilled(self) -> SpilledRows:
        """The rows written, once the window is done (after the `with` block)."""
        return SpilledRows(self._path if self._rows else None, self._rows, self._schema)


def trim(table: pa.Table, window: Window, event_column: str) -> pa.Table:
    """Rows with window.start <= event < window.end (a widened window returns more); `table` itself
    when every row is inside, as a filter would copy it."""
    events = table[event_column]
    bounds = pc.min_max(events).as_py()
    if bounds["min"] is not None and window.start <= bounds["min"] and bounds["max"] < window.end:
        return table
    inside = pc.and_(
        pc.greater_equal(events, pa.scalar(window.start, events.type)),
        pc.less(events, pa.scalar(window.end, events.type)),
    )
    return table.filter(inside)
