"""(b) The fetch-to-Parquet path of one provider asset, without Dagster.

The provider resource's `fetch_days` (windows, pages, parsing into Arrow, day
split) and `ParquetStorage.write` for every day, in one process, as the
provider step does. With `timed`, every HTTP exchange is stamped (for the
rate-limited runs) through a transport with a pool larger than any fetch uses.

Worker: `python -m completions_assets_bench.pipeline '{"provider": ..., ...}'`.
"""

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa

from completions_assets.partitions import partition_days
from completions_assets.providers.bindbee import BINDBEE_SCHEMA
from completions_assets.providers.nexudus.lessons import NEXUDUS_SCHEMA
from completions_assets.providers.ranges import DayBatch
from completions_assets.providers.resource import BindbeeResource, NexudusResource, ProviderResource
from completions_assets.storage import ParquetStorage
from completions_assets_bench.procs import child_main
from completions_assets_bench.run_config import check_pacing_off, pacing_off

ASSETS = {"bindbee": ("bindbee_completions", BINDBEE_SCHEMA), "nexudus": ("nexudus_completions", NEXUDUS_SCHEMA)}
TIMED_POOL = 64  # connections of the timed transport: more than any fetch here keeps in flight


def make_resource(
    provider: str, base_url: str, credentials: dict[str, str], *, pacing: bool, settings: dict[str, Any] | None = None
) -> ProviderResource:
    """The resource as definitions.py builds it against the sandbox; pacing off unless asked."""
    resource_type: type[ProviderResource] = BindbeeResource if provider == "bindbee" else NexudusResource
    overrides = ({} if pacing else pacing_off(resource_type)) | (settings or {})
    if provider == "bindbee":
        resource: ProviderResource = BindbeeResource(
            base_url=base_url,
            api_key=credentials["BINDBEE_API_KEY"],
            connector_token=credentials["BINDBEE_CONNECTOR_TOKEN"],
            **overrides,
        )
    else:
        resource = NexudusResource(
            base_url=base_url,
            username=credentials["NEXUDUS_USERNAME"],
            password=credentials["NEXUDUS_PASSWORD"],
            timezone="UTC",
            **overrides,
        )
    if not pacing:
        check_pacing_off(resource)
    return resource


class TimedTransport(httpx.HTTPTransport):
    """Stamps (sent, answered, status, method, path) of every exchange, seconds since the epoch."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        self.exchanges: list[tuple[float, float, int, str, str]] = []
        self.response_bytes = 0  # of the bodies, as the client reads them

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = super().handle_request(request)
        response.read()  # here, so its size is known; the client reads the same bytes anyway
        self.response_bytes += len(response.content)
        self.exchanges.append((sent, time.time(), response.status_code, request.method, request.url.path))
        return response


def fetch_to_parquet(args: dict[str, Any]) -> dict[str, Any]:
    provider = args["provider"]
    resource = make_resource(
        provider, args["base_url"], args["credentials"], pacing=args["pacing"], settings=args.get("settings")
    )
    first = dt.date.fromisoformat(args["first"])
    days = partition_days(first, first + dt.timedelta(days=args["days"] - 1), ZoneInfo("UTC"))
    storage, (asset, schema) = ParquetStorage(root=args["root"]), ASSETS[provider]
    transport = None
    if args.get("timed"):
        transport = TimedTransport(httpx.Limits(max_connections=TIMED_POOL, max_keepalive_connections=TIMED_POOL))
    rows, stats = 0, {}
    for batch in _batches(resource, days, transport):
        storage.write(asset, batch.day.date, batch.table, schema)
        rows += batch.table.num_rows
        shared = getattr(batch, "stats", None)  # the days of one fetch share its stats object
        if shared is not None:
            stats[id(shared)] = shared
    result: dict[str, Any] = {
        "rows": rows,
        "requests": _total(stats, "requests"),
        "retries": _total(stats, "retries"),
        "rate_wait_s": _total(stats, "rate_wait_seconds"),
    }
    if transport is not None:
        result["exchanges"] = transport.exchanges
        result["response_bytes"] = transport.response_bytes
    return result


def _total(stats: Mapping[int, object], name: str) -> float:
    return sum(getattr(s, name, 0) for s in stats.values())


def _batches(resource: ProviderResource, days, transport: httpx.BaseTransport | None) -> Iterator[DayBatch]:
    if transport is None:
        yield from resource.fetch_days(days)  # the asset's own call
        return
    with resource.create_client(transport=transport) as client:
        yield from client.fetch_days(days)


if __name__ == "__main__":
    # pyarrow imports pandas (about 0.4 s, 35 MB) on its first pa.array from a list:
    # an import like the others, so it happens before the clock starts.
    pa.array([0])
    child_main(fetch_to_parquet)
