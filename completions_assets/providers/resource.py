"""The settings every provider resource shares, declared and validated once here.

A resource is thin: its fields are the settings, and `create_client` hands them
to the plain client, which reads them directly. One client is built per step
and serves every day of its range.
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import httpx
from dagster import ConfigurableResource
from pydantic import Field

from completions_assets.http.pacing import Clock, RateLimit
from completions_assets.partitions import DayWindow
from completions_assets.providers.sweeps import DayBatch
from completions_assets.settings import ConfigurationError

if TYPE_CHECKING:
    from completions_assets.providers.client import ProviderClient


class ProviderResource(ConfigurableResource):
    """Settings shared by every provider resource (subclasses add base_url, credentials, paging, pacing)."""

    base_url: str
    page_size: int
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds to wait for a response (per read).")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per request, the first included.")
    backoff_initial_s: float = Field(
        default=0.5, ge=0, description="First retry delay; doubles per retry, with jitter."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest backoff delay.")
    retry_after_cap_s: float = Field(
        default=900.0,
        ge=0,
        description="Longest wait honoured from a Retry-After header; a provider asking for more fails the request at once.",
    )
    rate_margin_ms: int = Field(default=1, ge=0, description="Safety margin added to every rate-limit window.")
    window_records: int = Field(
        default=10_000,
        ge=1,
        description="Records a request window is sized to hold, from the density seen so far.",
    )
    max_window_days: int = Field(default=8, ge=1, description="Longest request window, in days (sparse ranges).")
    max_concurrent_requests: int = Field(default=8, ge=1, description="Requests in flight at once (threads).")
    max_records_in_flight: int = Field(
        default=50_000,
        ge=1,
        description="Records fetched but not yet written that a step may hold; fetching waits beyond it.",
    )
    secret_env: dict[str, str] = Field(
        default_factory=dict,
        description="Secret fields read from these environment variables when a step starts "
        "(names only: values never enter the config).",
    )

    def credentials(self, names: Iterable[str]) -> dict[str, str | None]:
        """The secret fields `names`: read through `dagster.EnvVar` when `secret_env` names their
        variable (so an unset one fails only the step that needs it), else as given.

        Raises:
            ConfigurationError: a named variable is unset or empty.
        """
        values: dict[str, str | None] = {}
        for name in names:
            variable = self.secret_env.get(name)
            if variable is None:
                values[name] = getattr(self, name)
                continue
            value = dg.EnvVar(variable).get_value()
            if not value:
                raise ConfigurationError(f"environment variable {variable} is not set (the {name} of this connection)")
            values[name] = value
        return values

    def rate_limits(self) -> Sequence[RateLimit]:
        """The pacing limits these settings ask for; none means pacing is off."""
        return ()

    def create_client(
        self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None
    ) -> "ProviderClient":
        """A new plain client with these settings (the caller closes it)."""
        raise NotImplementedError

    def fetch_days(self, windows: Sequence[DayWindow]) -> Iterator[DayBatch]:
        """One DayBatch per window, in order (see ProviderClient.fetch_days).

        The client (one per step: a step fetches its whole range in one call) is
        built here, not when the resource is set up, so a missing credential
        fails the step that needs it and no other.
        """
        with self.create_client() as client:
            yield from client.fetch_days(windows)
