"""The resources of the code location: one per connection, secrets as `dagster.EnvVar`.

The UI and run config show only the names of the variables; their values are
read when a step starts, so an unset variable fails only its connection's step.
"""

import os
from collections.abc import Mapping, Sequence

import dagster as dg

from completions_assets.connections import Connection
from completions_assets.providers.resource import ProviderResource
from completions_assets.settings import Settings, check_base_url
from completions_assets.storage import ParquetStorage


def connection_resource(connection: Connection, settings: Settings, environ: Mapping[str, str] = os.environ) -> ProviderResource:
    provider = connection.provider
    base_url = connection.base_url
    if base_url is None:
        base_url = environ.get(provider.base_url_env) or provider.resource_type.model_fields["base_url"].default
        check_base_url(base_url, name=provider.base_url_env)
    fields: dict[str, object] = dict(provider.resource_defaults(settings)) if provider.resource_defaults else {}
    fields.update(connection.options)
    fields.update({name: dg.EnvVar(variable) for name, variable in connection.secrets.items()})
    return provider.resource_type(base_url=base_url, **fields)


def build_resources(connections: Sequence[Connection], settings: Settings) -> dict[str, object]:
    return {
        **{c.resource_key: connection_resource(c, settings) for c in connections},
        "storage": ParquetStorage(root=settings.data_root),
    }
