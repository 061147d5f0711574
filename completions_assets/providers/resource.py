"""The settings every provider resource shares, declared and validated once here.

A resource is thin: its fields are the settings, and `create_client` hands them
to the plain client, which reads them directly. One client is built per step
and reused for every day of a range.
"""

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import httpx
from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.partitions import DayWindow
from completions_assets.providers.sweeps import DayBatch

if TYPE_CHECKING:
    from completions_assets.providers.client import ProviderClient


class ProviderResource(ConfigurableResource):
    """Settings shared by every provider resource (subclasses add base_url, credentials, paging, pacing)."""

    base_url: str
    page_size: int
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response (per read).")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, the first included.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles per retry, with jitter.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest backoff delay.")
    retry_after_cap_s: float = Field(default=60.0, ge=0, description="Longest wait honoured from a Retry-After header.")
    rate_margin_ms: int = Field(default=1, ge=0, description="Safety margin added to every rate-limit window.")
    sweep_days: int = Field(default=8, ge=1, description="Consecutive days fetched by one request sweep.")
    max_concurrent_sweeps: int = Field(default=4, ge=1, description="Sweeps in flight at once (threads).")

    _client: "ProviderClient | None" = PrivateAttr(default=None)

    def rate_limits(self) -> Sequence[RateLimit]:
        """The pacing limits these settings ask for; none means pacing is off."""
        return ()

    def create_client(
        self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None
    ) -> "ProviderClient":
        """A new plain client with these settings (the caller closes it)."""
        raise NotImplementedError

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._client = self.create_client()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """One DayBatch per window, in order (see ProviderClient.fetch_days)."""
        if self._client is not None:
            yield from self._client.fetch_days(windows)
            return
        with self.create_client() as client:  # used outside a Dagster step
            yield from client.fetch_days(windows)
