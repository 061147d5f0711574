"""The sandbox as the benchmark drives it: its own process, its counters, its latency knob."""

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from completions_assets.connections import Connection
from completions_assets.local.launch import sandbox_connection_args, sandbox_process
from completions_assets.sandbox.config import load_credentials
from completions_assets_bench.procs import cpu_seconds, descendants, peak_rss_mb
from completions_assets_bench.workload import (
    Window,
    Workload,
    minimum_requests,
    needed,
    requested_windows,
    requests_per_window,
    sandbox_args,
)

CREDENTIALS = load_credentials()  # what a sandbox started from this environment accepts


@dataclass
class Sandbox:
    base_url: str
    pid: int
    workload: Workload | None = None
    _counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def next_query(self) -> int:
        """The number the sandbox will give its next data request (a mark for `queries`)."""
        return int(self._queries(1 << 62)["next"])

    def queries(self, since: int) -> list[dict]:
        """Provider and query parameters of every data request numbered `since` or later."""
        return list(self._queries(since)["queries"])

    def _queries(self, since: int) -> dict:
        response = httpx.get(f"{self.base_url}/_sandbox/queries", params={"since": since}, timeout=60)
        response.raise_for_status()
        return response.json()

    def windows_since(self, since: int) -> dict[str, list[Window]]:
        """The request windows (first pages) of the data requests since the mark, per provider."""
        return requested_windows(self.queries(since))

    def requests_since(self, since: int) -> dict[str, dict[Window | None, int]]:
        """Requests per window (every page) since the mark, per provider."""
        return requests_per_window(self.queries(since))

    def window_records(self, window: Window) -> int:
        """Records the sandbox returns for `window` (ground truth, cached)."""
        key = (window.provider, window.start, window.end)
        if key not in self._counts:
            self._counts[key] = self.count(window.provider, window.start, window.end)
        return self._counts[key]

    def minimum(self, windows: list[Window]) -> int:
        """ceil(records / page size) per window, an empty window one (a walk ends on its first empty page)."""
        return minimum_requests((self.window_records(w), w.page_size) for w in windows)

    def walked(self, requests: Mapping[Window | None, int]) -> tuple[list[Window], list[Window]]:
        """The windows walked to their end (as many requests as a full walk needs, or more) and those
        given up before it (probes: a first page read, say, to size smaller windows)."""
        walked: list[Window] = []
        probes: list[Window] = []
        for window, count in requests.items():
            if window is not None:
                full = count >= needed(self.window_records(window), window.page_size)
                (walked if full else probes).append(window)
        return walked, probes

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid) or 0.0

    def stats(self) -> dict[str, dict]:
        """Requests per provider (and the token endpoint) with counts per status."""
        return httpx.get(f"{self.base_url}/_sandbox/stats", timeout=30).json()

    def set_latency(self, milliseconds: float) -> None:
        knobs = {"latency_ms": milliseconds}
        response = httpx.post(
            f"{self.base_url}/_sandbox/control", json={"bindbee": knobs, "nexudus": knobs}, timeout=30
        )
        response.raise_for_status()

    def count(self, provider: str, start: str, end: str) -> int:
        """Records the sandbox holds with event time in [start, end) (ISO 8601)."""
        params = {"provider": provider, "start": start, "end": end}
        response = httpx.get(f"{self.base_url}/_sandbox/ground_truth", params=params, timeout=60)
        response.raise_for_status()
        return len(response.json()["ids"])

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid) or 0.0

    def wait_idle(self, *, timeout_s: float = 180.0, step_s: float = 0.5) -> None:
        """Until the sandbox stops burning CPU (it encodes every record once after start)."""
        deadline = time.monotonic() + timeout_s
        before = self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(step_s)
            now = self.cpu_s()
            if now - before < 0.02:
                return
            before = now
        raise TimeoutError(f"sandbox {self.base_url} still busy after {timeout_s:.0f}s")


def _sandbox_pids() -> set[int]:
    pids = set()
    for pid in descendants(os.getpid()):
        try:
            if b"completions_assets.sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except OSError:
            pass
    return pids


@contextmanager
def serving(
    workload: Workload, *, rate_limits: bool = False, connections: Sequence[Connection] = ()
) -> Iterator[Sandbox]:
    """A sandbox process serving `workload` to `connections` (a provider with none of them keeps its
    one default connection), stopped by its PID on exit; enter one at a time."""
    known = _sandbox_pids()
    args = sandbox_args(workload, rate_limits=rate_limits) + sandbox_connection_args(connections)
    with sandbox_process(args) as base_url:
        new = _sandbox_pids() - known
        if len(new) != 1:
            raise RuntimeError(f"cannot tell which process serves {base_url}: {sorted(new)}")
        yield Sandbox(base_url, new.pop(), workload)
