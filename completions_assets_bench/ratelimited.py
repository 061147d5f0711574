"""Section 4: the sandbox enforcing the documented limits, the resources pacing by default.

Bindbee: 200 requests per minute per connector token (429 beyond). Nexudus:
1 request per 100 ms, 120 per minute and 5,000 per hour (409 beyond). Each
provider gets its own sandbox (the two workloads differ in density), and both
fetch-to-Parquet workers run at once. Every request's send time is stamped
on the client, so the achieved rate is measured against each limit.

Under a sliding-window limit of L requests per W seconds, N requests cannot
span less than floor((N - 1) / L) * W seconds from the first send to the
last. The achieved share of the documented rate is that minimum over the
span measured, for the limit that binds; the busiest window of each limit
shows that none was exceeded.
"""

import math
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from completions_assets_bench import workload
from completions_assets_bench.procs import run_workers
from completions_assets_bench.sandbox import CREDENTIALS, serving

LIMITS = {"bindbee": ((200, 60.0),), "nexudus": ((1, 0.1), (120, 60.0), (5000, 3600.0))}
THROTTLE_STATUS = {"bindbee": "429", "nexudus": "409"}
TIMEOUT_S = 300.0
OLD_MARGIN_MS = 10  # the default before this benchmark; 1 ms ships
DATA_PATHS = {"bindbee": "/api/lms/v1/completions", "nexudus": "/api/content/coursecompletedlessons"}


@dataclass
class LimitUse:
    count: int
    seconds: float
    busiest: int  # most sends in any window of this length

    @property
    def label(self) -> str:
        if self.seconds < 1:
            return f"1 per {self.seconds * 1000:.0f} ms" if self.count == 1 else f"{self.count} per {self.seconds} s"
        unit = {60.0: "minute", 3600.0: "hour"}.get(self.seconds, f"{self.seconds:g} s")
        return f"{self.count:,} per {unit}"


@dataclass
class RateResult:
    provider: str
    days: int
    density: int
    rows: int
    requests: int  # data requests the sandbox answered, any status
    throttled: int  # 429 (Bindbee) or 409 (Nexudus)
    span_s: float  # first send to last send
    wall_s: float
    binding: LimitUse  # the limit that sets the minimum span
    limits: list[LimitUse]
    minimum_span_s: float
    rate_wait_s: float

    @property
    def share_of_limit(self) -> float:
        """Achieved rate over the binding limit's rate (1.0: as fast as the limit allows)."""
        return self.minimum_span_s / self.span_s if self.span_s > 0 else 1.0

    @property
    def achieved_per_minute(self) -> float:
        return self.share_of_limit * self.binding.count * 60.0 / self.binding.seconds


def busiest_window(sends: list[float], seconds: float) -> int:
    best, low = 0, 0
    for high, moment in enumerate(sends):
        while moment - sends[low] >= seconds:
            low += 1
        best = max(best, high - low + 1)
    return best


def analyse(provider: str, sends: list[float]) -> tuple[LimitUse, list[LimitUse], float]:
    sends = sorted(sends)
    uses = [LimitUse(count, seconds, busiest_window(sends, seconds)) for count, seconds in LIMITS[provider]]
    spans = [math.floor((len(sends) - 1) / use.count) * use.seconds for use in uses]
    minimum = max(spans)
    return uses[spans.index(minimum)], uses, minimum


def measure_rate_limits() -> tuple[list[RateResult], RateResult]:
    """Both providers at once with the shipped pacing; then Nexudus again with the old 10 ms margin (for comparison)."""
    runs = {
        "bindbee": (workload.RATE_BINDBEE, workload.RATE_BINDBEE_RANGE),
        "nexudus": (workload.RATE_NEXUDUS, workload.RATE_NEXUDUS_RANGE),
    }
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-rate-") as scratch:
        sandboxes = {p: stack.enter_context(serving(w, rate_limits=True)) for p, (w, _) in runs.items()}
        for sandbox in sandboxes.values():
            sandbox.wait_idle()
        roles = {p: _role(p, sandboxes[p].base_url, days, Path(scratch) / p) for p, (_, days) in runs.items()}
        done = run_workers("pipeline", roles, timeout_s=TIMEOUT_S).results
        stats = {p: sandboxes[p].stats()[p] for p in runs}
        # 40 more requests stay within Nexudus's 120 per minute.
        nexudus = _role(
            "nexudus",
            sandboxes["nexudus"].base_url,
            runs["nexudus"][1],
            Path(scratch) / "old-margin",
            settings={"rate_margin_ms": OLD_MARGIN_MS},
        )
        old = run_workers("pipeline", {"nexudus": nexudus}, timeout_s=TIMEOUT_S).results["nexudus"]
        old_stats = _minus(sandboxes["nexudus"].stats()["nexudus"], stats["nexudus"])
    shipped = [_result(p, *runs[p], done[p], stats[p]) for p in runs]
    return shipped, _result("nexudus", *runs["nexudus"], old, old_stats)


def _role(provider: str, base_url: str, days: workload.Range, root: Path, **extra: object) -> dict:
    return {
        "provider": provider,
        "base_url": base_url,
        "credentials": CREDENTIALS,
        "first": days.first.isoformat(),
        "days": days.days,
        "root": str(root),
        "pacing": True,
        "timed": True,
        **extra,
    }


def _minus(after: dict, before: dict) -> dict:
    statuses = {k: n - before["statuses"].get(k, 0) for k, n in after["statuses"].items()}
    return {"requests": after["requests"] - before["requests"], "statuses": statuses}


def _result(provider: str, work: workload.Workload, days: workload.Range, result: dict, stats: dict) -> RateResult:
    sends = [
        sent for sent, _, _, method, path in result["exchanges"] if method == "GET" and path == DATA_PATHS[provider]
    ]
    binding, uses, minimum = analyse(provider, sends)
    return RateResult(
        provider=provider,
        days=days.days,
        density=work.density,
        rows=result["rows"],
        requests=stats["requests"],
        throttled=stats["statuses"].get(THROTTLE_STATUS[provider], 0),
        span_s=max(sends) - min(sends),
        wall_s=result["ended"] - result["began"],
        binding=binding,
        limits=uses,
        minimum_span_s=minimum,
        rate_wait_s=result["rate_wait_s"],
    )
