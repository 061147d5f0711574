"""(b) The fetch-to-Parquet path of one provider asset, without Dagster.

The provider resource's `fetch_days` (sweeps, pages, parsing into Arrow, day
split) and `ParquetStorage.write` for every day, in one process, as the
provider step does. With `timed`, every HTTP exchange is stamped (for the
rate-limited runs) through a transport with the resource's own pool limits.

Worker: `python -m completions_assets_bench.pipeline '{"provider": ..., ...}'`.
"""

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa

from completions_assets.partitions import day_windows
from completions_assets.providers.bindbee import BINDBEE_SCHEMA, BindbeeResource, format_filter_time, sweep_params
from completions_assets.providers.nexudus.client import (
    DEFAULT_MARGIN_MINUTES,
    NEXUDUS_SCHEMA,
    NexudusResource,
    request_window,
)
from completions_assets.providers.resource import ProviderResource
from completions_assets.providers.sweeps import DayBatch
from completions_assets.storage import ParquetStorage
from completions_assets_bench import workload
from completions_assets_bench.procs import child_main

ASSETS = {"bindbee": ("bindbee_completions", BINDBEE_SCHEMA), "nexudus": ("nexudus_completions", NEXUDUS_SCHEMA)}
PACING_OFF = {
    "bindbee": {"requests_per_minute": 0},
    "nexudus": {"min_interval_ms": 0, "requests_per_minute": 0, "requests_per_hour": 0},
}


def make_resource(
    provider: str, base_url: str, credentials: dict[str, str], *, pacing: bool, settings: dict[str, Any] | None = None
) -> ProviderResource:
    """The resource as definitions.py builds it against the sandbox; pacing off unless asked."""
    overrides = ({} if pacing else PACING_OFF[provider]) | (settings or {})
    if provider == "bindbee":
        return BindbeeResource(
            base_url=base_url,
            api_key=credentials["BINDBEE_API_KEY"],
            connector_token=credentials["BINDBEE_CONNECTOR_TOKEN"],
            **overrides,
        )
    return NexudusResource(
        base_url=base_url,
        username=credentials["NEXUDUS_USERNAME"],
        password=credentials["NEXUDUS_PASSWORD"],
        timezone="UTC",
        **overrides,
    )


class TimedTransport(httpx.HTTPTransport):
    """Stamps (sent, answered, status, method, path) of every exchange, seconds since the epoch."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self.exchanges: list[tuple[float, float, int, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = super().handle_request(request)
        self.exchanges.append((sent, time.time(), response.status_code, request.method, request.url.path))
        return response


def fetch_to_parquet(args: dict[str, Any]) -> dict[str, Any]:
    provider = args["provider"]
    resource = make_resource(
        provider, args["base_url"], args["credentials"], pacing=args["pacing"], settings=args.get("settings")
    )
    first = dt.date.fromisoformat(args["first"])
    windows = day_windows(first, first + dt.timedelta(days=args["days"] - 1), ZoneInfo("UTC"))
    storage, (asset, schema) = ParquetStorage(root=args["root"]), ASSETS[provider]
    transport = None
    if args.get("timed"):
        pool = workload.CONCURRENT_SWEEPS + 1  # what build_client gives the default transport
        transport = TimedTransport(httpx.Limits(max_connections=pool, max_keepalive_connections=pool))
    rows, sweeps = 0, {}
    for batch in _batches(resource, windows, transport):
        storage.write(asset, batch.window.day, batch.table, schema)
        rows += batch.table.num_rows
        sweeps[id(batch.stats)] = batch.stats  # the days of a sweep share its stats object
    result: dict[str, Any] = {
        "rows": rows,
        "requests": sum(s.requests for s in sweeps.values()),
        "retries": sum(s.retries for s in sweeps.values()),
        "rate_wait_s": sum(s.rate_wait_seconds for s in sweeps.values()),
    }
    if transport is not None:
        result["exchanges"] = transport.exchanges
    return result


def _batches(resource: ProviderResource, windows, transport: httpx.BaseTransport | None) -> Iterator[DayBatch]:
    if transport is None:
        yield from resource.fetch_days(windows)  # the asset's own call
        return
    with resource.create_client(transport=transport) as client:
        yield from client.fetch_days(windows)


def check_same_requests() -> None:
    """The ceiling must walk exactly the pipeline's sweeps and windows; fail loudly if they drifted."""
    defaults = {name: field.default for name, field in BindbeeResource.model_fields.items()}
    assert (defaults["sweep_days"], defaults["max_concurrent_sweeps"]) == (
        workload.SWEEP_DAYS,
        workload.CONCURRENT_SWEEPS,
    )
    assert defaults["page_size"] == workload.PAGE_SIZE
    assert DEFAULT_MARGIN_MINUTES * 60 == workload.NEXUDUS_MARGIN.total_seconds()
    for start, end in workload.THROUGHPUT.sweeps():
        ours = workload.bindbee_params(start, end)
        assert ours == sweep_params(start, end, workload.PAGE_SIZE, raw_data=False, custom_fields=False), ours
        assert ours["completed_at_from"] == format_filter_time(start)
        window = request_window(start, end, DEFAULT_MARGIN_MINUTES)
        ours = workload.nexudus_params(start, end)
        assert (ours["from_CourseCompletedLesson_CreatedOn"], ours["to_CourseCompletedLesson_CreatedOn"]) == window


if __name__ == "__main__":
    # pyarrow imports pandas (about 0.4 s, 35 MB) on its first pa.array from a list:
    # an import like the others, so it happens before the clock starts.
    pa.array([0])
    child_main(fetch_to_parquet)
