"""What makes a provider, declared once: the client, the assets, their checks, the merge
and the run report all read a `Provider`, so a new provider is one new declaration."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from completions_assets.http.pagination import Paginator
from completions_assets.providers.checks import ProviderCheck

if TYPE_CHECKING:
    from completions_assets.providers.resource import ProviderResource
    from completions_assets.settings import Settings

# A unified column from a raw column: its name, or a function of the raw day.
LmsColumn = str | Callable[[pa.Table], pa.Array | pa.ChunkedArray]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per provider
class Provider:
    name: str  # resource key, pool, the `provider` value of its rows; its asset is `{name}_completions`
    description: str  # of its asset, shown in the UI
    path: str  # the list endpoint
    paginator: Callable[[str], Paginator]  # a new page walker, given the provider's name
    schema: pa.Schema  # of its raw files
    documented_fields: frozenset[str]  # record fields it documents; others are reported, never kept
    id_column: str
    event_column: str  # a record belongs to the day this falls in
    version_column: str  # of two copies of an id, the greater one wins
    throttle_statuses: tuple[int, ...]  # answers that mean "slow down" (retried after Retry-After)
    lms_columns: Mapping[str, LmsColumn]  # unified column -> source; unlisted columns are null
    checks: tuple[ProviderCheck, ...]
    resource_type: type["ProviderResource"]
    base_url_env: str  # the variable with the base URL of connections that name none
    secret_env: Mapping[str, str]  # secret resource field -> variable of the `default` connection
    credential_sets: tuple[tuple[str, ...], ...]  # secret fields a connection must name, one set of them
    optional_secrets: tuple[str, ...] = ()  # secret fields that fall back to `secret_env`
    connection_options: tuple[str, ...] = ()  # other resource fields a connection may set
    resource_defaults: Callable[["Settings"], Mapping[str, object]] | None = None  # from COMPLETIONS_*
    day_facts: Callable[[pa.Table], Mapping[str, int]] | None = None  # merge metadata about a raw day
    # A per-connection snapshot asset that names more of each raw row (Nexudus: the enrolments), and
    # how the merge adds its columns to a raw day (given None when the snapshot is missing).
    dimension: str | None = None
    enrich: Callable[[pa.Table, pa.Table | None], pa.Table] | None = None

    @property
    def asset_name(self) -> str:
        return f"{self.name}_completions"
