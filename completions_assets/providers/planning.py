"""How a range is cut into request windows, and how many records may be held at once.

A window is sized by records, not days: the planner learns the density from
what the provider reported (Nexudus's TotalItems) or what finished windows
returned, and sizes the next window to hold about `target_records`. Dense
ranges thus get more, shorter windows (more walks in parallel), sparse ones
fewer, longer windows (fewer requests). The budget caps the records held in
memory: pages in flight and batches not yet written to disk (spill.py), and
days being cut and written; the earliest unfinished window is never held back
once the days before it are written, so a range always finishes.
"""

import datetime as dt
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from completions_assets.http.pagination import Page

_MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Window:
    """A request window [start, end) in UTC, before any provider widening."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class WindowPlanner:
    """Cuts [start, end) into consecutive windows of about `target_records` records. Thread-safe.

    Until anything is known, a window is `first_length` long. Only the records inside a window
    count: a provider that widens its query (Nexudus) drops the rest as pages arrive.
    """

    def __init__(
        self,
        start: dt.datetime,
        end: dt.datetime,
        *,
        target_records: int,
        max_length: dt.timedelta,
        first_length: dt.timedelta = dt.timedelta(days=1),
        min_length: dt.timedelta = dt.timedelta(minutes=15),
    ) -> None:
        self._next_start = start
        self._end = end
        self._target = target_records
        self._max = max_length
        self._first = min(first_length, max_length)
        self._min = min(min_length, max_length)
        self._records = 0
        self._seconds = 0.0
        self._lock = threading.Lock()

    def observe(self, records: int, seconds: float) -> None:
        """`records` were found in `seconds` of event time."""
        with self._lock:
            self._records += records
            self._seconds += seconds

    def oversized(self, records: int, window: Window) -> bool:
        """Whether a window reported to hold `records` is worth cutting up (Nexudus's first page says
        so): well over the target and longer than the shortest window."""
        return records > 1.5 * self._target and window.end - window.start > self._min

    def rewind(self, window: Window) -> None:
        """Plan again from `window.start`, now that more is known: `window` was the last window planned."""
        with self._lock:
            if self._next_start != window.end:
                raise ValueError(f"only the last window planned can be planned again, not {window}")
            self._next_start = window.start

    @property
    def knows_density(self) -> bool:
        with self._lock:
            return self._seconds > 0

    def next(self) -> Window | None:
        """The next window, or None once the range is covered."""
        with self._lock:
            start = self._next_start
            if start >= self._end:
                return None
            end = min(self._end, start + self._length())
            if self._end - end < self._min:  # no sliver of a window at the end
                end = self._end
            self._next_start = end
            return Window(start, end)

    def _length(self) -> dt.timedelta:
        if not self._seconds:
            return self._first
        density = self._records / self._seconds  # records per second
        if not density:
            return self._max
        seconds = self._target / density
        minutes = max(1, math.floor(seconds / 60))  # whole minutes: Nexudus filters by the minute
        return max(self._min, min(self._max, minutes * _MINUTE))


class StepRecords:
    """Records held in memory by every client of one step, capped at `limit`. Thread-safe.

    Clients fetching at once share it through their RecordBudgets. One of them at a
    time, the first registered still fetching, has priority: its earliest window
    proceeds even when the step's budget is spent, so it finishes and hands the
    priority on; the others wait for room. Memory thus follows the step's budget
    (plus the priority's day), not the number of connections.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self.changed = threading.Condition()
        self._fetching: list[object] = []

    def join(self, client: object) -> None:
        with self.changed:
            self._fetching.append(client)

    def leave(self, client: object) -> None:
        with self.changed:
            self._fetching.remove(client)
            self.changed.notify_all()

    def has_priority(self, client: object) -> bool:
        return bool(self._fetching) and self._fetching[0] is client


class RecordBudget:
    """Records held in memory, capped at `limit` (and by the step's `shared` budget). Thread-safe.

    Windows are numbered in range order. A window takes room before each
    request and gives it back once the page's batch is written to disk; days are
    read back under room taken as the window that completed them. A taker waits
    while the budget is spent, unless it is the earliest window not yet handed
    on, once the caller has written the days of the windows before it: that one
    always proceeds, so the range finishes and memory stays near `limit` (plus
    one day being cut). With a `shared` budget, only the client with the step's
    priority has that right beyond the step's room.
    """

    def __init__(self, limit: int, shared: StepRecords | None = None, owner: object = None) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._earliest = 0
        self._shared = shared
        self._owner = owner
        self._changed = shared.changed if shared is not None else threading.Condition()

    def take(self, records: int, window: int, stop: threading.Event) -> None:
        with self._changed:
            while not stop.is_set() and not self._may_take(records, window):
                self._changed.wait(0.05)  # also notices `stop`, which nobody notifies
            self.held += records
            self.peak = max(self.peak, self.held)
            if self._shared is not None:
                self._shared.held += records
                self._shared.peak = max(self._shared.peak, self._shared.held)

    def _may_take(self, records: int, window: int) -> bool:
        shared = self._shared
        earliest = window == self._earliest
        if shared is None:
            return earliest or self.held + records <= self.limit
        if earliest and shared.has_priority(self._owner):
            return True
        room = shared.held + records <= shared.limit
        return room and (earliest or self.held + records <= self.limit)

    def give(self, records: int) -> None:
        if records:
            with self._changed:
                self.held -= records
                if self._shared is not None:
                    self._shared.held -= records
                self._changed.notify_all()

    def handed_on(self, window: int) -> None:
        """The caller is done with window `window` (its days written): the next one is now the earliest."""
        with self._changed:
            self._earliest = window + 1
            self._changed.notify_all()


@dataclass(frozen=True)
class WindowTicket:
    """What a window's walk needs besides its window: its place in the range, the budget, the stop flag."""

    index: int
    budget: RecordBudget
    planner: WindowPlanner
    stop: threading.Event
    blind: bool = False  # planned before any window had shown the density

    def take(self, records: int) -> None:
        self.budget.take(records, self.index, self.stop)

    def returning_room(self, pages: Iterable[Page], page_size: int) -> Iterator[Page]:
        """`pages`, giving back the room a short page did not fill (a full page's was taken)."""
        for page in pages:
            self.budget.give(page_size - len(page.records))
            yield page
