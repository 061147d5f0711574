"""A provider's settings as a Dagster resource: the one place the providers meet Dagster.

A resource is its provider's settings (`FetchSettings` and the provider's own fields) plus
what Dagster adds: secrets read through `dagster.EnvVar` when a step starts. `create_client`
hands the plain client plain settings; one client is built per step and serves every day of
its range.
"""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import dagster as dg
import httpx

from completions_assets.days import PartitionDay
from completions_assets.http.pacing import Clock
from completions_assets.providers.bindbee import BINDBEE, BindbeeSettings
from completions_assets.providers.client import ProviderClient
from completions_assets.providers.nexudus.lessons import NEXUDUS, NexudusSettings
from completions_assets.providers.provider import FetchSettings, Provider
from completions_assets.providers.ranges import DayBatch
from completions_assets.settings import ConfigurationError


class ProviderResource(dg.ConfigurableResource, FetchSettings):
    """A connection of `provider`; a subclass also derives from the provider's own settings class."""

    provider: ClassVar[Provider]

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

    def client_settings(self) -> FetchSettings:
        """These settings as the plain model the client reads, secrets read in."""
        fields: dict[str, Any] = self.model_dump()
        fields |= self.credentials(self.provider.secret_env) | {"secret_env": {}}
        return self.provider.settings.model_validate(fields)

    def create_client(
        self, *, clock: Clock | None = None, transport: httpx.BaseTransport | None = None
    ) -> ProviderClient:
        """A new plain client with these settings (the caller closes it)."""
        return ProviderClient(self.provider, self.client_settings(), clock=clock, transport=transport)

    def fetch_days(self, days: Sequence[PartitionDay]) -> Iterator[DayBatch]:
        """One DayBatch per day, in order (see ProviderClient.fetch_days).

        The client (one per step: a step fetches its whole range in one call) is
        built here, not when the resource is set up, so a missing credential
        fails the step that needs it and no other.
        """
        with self.create_client() as client:
            yield from client.fetch_days(days)


def resource_type(provider: Provider) -> type[ProviderResource]:
    """The resource class of `provider` (declared here for Bindbee and Nexudus, beside a new provider otherwise)."""
    pending: list[type[ProviderResource]] = [ProviderResource]
    while pending:
        cls = pending.pop()
        if getattr(cls, "provider", None) is provider:
            return cls
        pending.extend(cls.__subclasses__())
    raise LookupError(f"no resource class for provider {provider.name}")


class BindbeeResource(BindbeeSettings, ProviderResource):
    """One Bindbee connection (connector token): where and how its completions are fetched.

    Its secrets are read through dagster.EnvVar when a step starts."""

    provider = BINDBEE


class NexudusResource(NexudusSettings, ProviderResource):
    """One Nexudus account: where and how its completed lessons are fetched.

    Its secrets are read through dagster.EnvVar when a step starts."""

    provider = NEXUDUS
