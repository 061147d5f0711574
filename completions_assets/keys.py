"""The asset and check keys the definitions, the steps and the tests share (a contract: renaming
one loses its history in the instance)."""

import dagster as dg

from completions_assets.connections import Connection

GROUP = "lms"
LMS = dg.AssetKey("lms_completions")
ALL_CONNECTIONS_PRESENT = dg.AssetCheckKey(LMS, "all_connections_present")


def connection_key(connection: Connection) -> dg.AssetKey:
    """A connection's daily asset: `[{provider}_completions, {connection}]`."""
    return dg.AssetKey([connection.provider.asset_name, connection.name])


def dimension_key(connection: Connection) -> dg.AssetKey | None:
    """The connection's snapshot asset (`nexudus_course_members/<name>`), if its provider has one."""
    dimension = connection.provider.dimension
    return None if dimension is None else dg.AssetKey([dimension, connection.name])
