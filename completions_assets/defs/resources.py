"""The resources of the code location: one per connection.

A resource holds the names of its secrets' variables (`secret_env`), which the
UI and run config show; the values are read through `dagster.EnvVar` when a
step starts, so an unset variable fails only its connection's step. (An
`EnvVar` in a resource field would be resolved for every resource when the run
starts: one unset variable would fail every connection.)
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

from completions_assets.connections import Connection
from completions_assets.providers.resource import ProviderResource
from completions_assets.settings import Settings, check_base_url
from completions_assets.storage import ParquetStorage


def connection_resource(
    connection: Connection, settings: Settings, environ: Mapping[str, str] = os.environ
) -> ProviderResource:
    provider = connection.provider
    base_url = connection.base_url
    if base_url is None:
        base_url = environ.get(provider.base_url_env) or provider.resource_type.model_fields["base_url"].default
        check_base_url(base_url, name=provider.base_url_env)
    fields: dict[str, Any] = dict(provider.resource_defaults(settings)) if provider.resource_defaults else {}
    fields.update(connection.options)
    return provider.resource_type(base_url=base_url, secret_env=dict(connection.secrets), **fields)


def build_resources(connections: Sequence[Connection], settings: Settings) -> dict[str, object]:
    return {
        **{c.resource_key: connection_resource(c, settings) for c in connections},
        "storage": ParquetStorage(root=settings.data_root),
    }
