"""The resources of the code location: one per provider (`bindbee`, `nexudus`) and `storage`.

A provider's resource holds the settings its connections share (Launchpad / run config
tunes them for all of them); each connection applies its own over them when its step
starts (`Connection.configure`): the names of its secrets' variables (`secret_env`), its
base URL and its options. Secret values are read through `dagster.EnvVar` only then, so an
unset variable fails only its connection. (An `EnvVar` in a resource field would be
resolved when the run starts: one unset variable would fail every connection.) One
resource per provider rather than per connection: Dagster builds and validates every
resource a step requires, at about 15 ms each, which at hundreds of connections was most
of a step's own cost.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

from completions_assets.connections import Connection
from completions_assets.providers.provider import Provider
from completions_assets.providers.resource import ProviderResource, resource_type
from completions_assets.settings import Settings, check_base_url
from completions_assets.storage import ParquetStorage


def provider_resource(
    provider: Provider, settings: Settings, environ: Mapping[str, str] = os.environ
) -> ProviderResource:
    """The settings every connection of `provider` starts from."""
    base_url = environ.get(provider.base_url_env) or provider.settings.model_fields["base_url"].default
    check_base_url(base_url, name=provider.base_url_env)
    fields: dict[str, Any] = dict(provider.resource_defaults(settings)) if provider.resource_defaults else {}
    return resource_type(provider)(base_url=base_url, **fields)


def build_resources(connections: Sequence[Connection], settings: Settings) -> dict[str, object]:
    providers = dict.fromkeys(c.provider for c in connections)
    return {
        **{p.name: provider_resource(p, settings) for p in providers},
        "storage": ParquetStorage(root=settings.data_root),
    }
