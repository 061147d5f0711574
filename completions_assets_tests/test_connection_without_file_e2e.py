"""A connection that never wrote a day fails `all_connections_present` for it,
end to end: a run merges a day for which one configured connection has no file and no attempt
at all, so only the absence of its file can name it.

The assets, checks and resources are the code location's own (`completions_assets.definitions`,
loaded as Dagster loads it), and runs select them by asset key only.
"""

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest
import yaml

from completions_assets.connections import FILE_VARIABLE
from completions_assets.definitions import defs as load_definitions
from completions_assets.keys import LMS
from completions_assets.local.run_report import check_results
from completions_assets.sandbox import Sandbox
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS
from completions_assets.storage import ParquetStorage

pytestmark = pytest.mark.e2e

DAY = "2024-03-05"
FILE = {
    "bindbee": [
        {"name": "acme", "connector_token_env": "TOKEN_ACME"},
        {"name": "globex", "connector_token_env": "TOKEN_GLOBEX"},
    ],
    "nexudus": [{"name": "london", "username_env": "USER_LONDON", "password_env": "PASSWORD_LONDON"}],
}
ACME = dg.AssetKey(["bindbee_completions", "acme"])
GLOBEX = dg.AssetKey(["bindbee_completions", "globex"])
LONDON = dg.AssetKey(["nexudus_completions", "london"])


def code_location(
    monkeypatch: pytest.MonkeyPatch, environ: Mapping[str, str]
) -> tuple[list[dg.AssetsDefinition], dict[str, object]]:
    """The code location's assets and resources as Dagster loads them (`defs()`) with `environ` set:
    each test gets its own connections and data root, read when the definitions load."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    defs = load_definitions()
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]
    return assets, dict(defs.resources or {})


def location_environ(tmp_path: Path, base_url: str, connections: object) -> dict[str, str]:
    """A connections file, a data root and the sandbox's URL, for `code_location`."""
    path = tmp_path / "connections.yaml"
    path.write_text(yaml.safe_dump(connections))
    return {
        FILE_VARIABLE: str(path),
        "COMPLETIONS_DATA_ROOT": str(tmp_path / "data"),
        "COMPLETIONS_START_DATE": "2024-01-01",
        "COMPLETIONS_TIMEZONE": "UTC",
        "COMPLETIONS_FRESHNESS_HOUR": "off",  # 2024 days: freshness checks (tested on their own) would be overdue
        "BINDBEE_BASE_URL": base_url,
        "NEXUDUS_BASE_URL": base_url,
    }


def test_a_connection_that_never_wrote_the_day_fails_all_connections_present(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "BINDBEE_API_KEY": DEFAULT_CREDENTIALS["BINDBEE_API_KEY"],
        "TOKEN_ACME": DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
        "TOKEN_GLOBEX": DEFAULT_CREDENTIALS["BINDBEE_CONNECTOR_TOKEN"],
        "USER_LONDON": DEFAULT_CREDENTIALS["NEXUDUS_USERNAME"],
        "PASSWORD_LONDON": DEFAULT_CREDENTIALS["NEXUDUS_PASSWORD"],
    }
    environ = location_environ(tmp_path, sandbox.base_url, FILE)
    assets, resources = code_location(monkeypatch, environ | secrets)
    instance = dg.DagsterInstance.ephemeral()

    def run(selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets,
            resources=resources,
            instance=instance,
            partition_key=DAY,
            selection=selection,
            raise_on_error=False,
        )

    # London writes the day in a run of its own; then acme and the merge, without globex.
    assert run(dg.AssetSelection.assets(LONDON)).success
    merged = run(dg.AssetSelection.assets(ACME, LMS))
    assert merged.success  # all_connections_present warns with an ERROR severity, it blocks nothing

    storage = ParquetStorage(root=environ["COMPLETIONS_DATA_ROOT"])
    day = dt.date.fromisoformat(DAY)
    assert storage.read("bindbee_completions/connection=globex", day) is None
    assert not instance.get_materialized_partitions(GLOBEX)
    assert not instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(
        GLOBEX
    )  # never planned either: only its missing file can name it
    table = storage.read("lms_completions", day)
    assert table is not None
    labels = set(zip(table["provider"].to_pylist(), table["connection"].to_pylist(), strict=True))
    assert labels == {("bindbee", "acme"), ("nexudus", "london")}

    results = {e.check_name: e for e in check_results(instance, merged.run_id) if e.partition == DAY}
    present = results["all_connections_present"]
    assert not present.passed
    assert present.metadata["connections_without_file"].value == ["bindbee:globex"]
    assert present.metadata["connections_failed"].value == []
    assert present.metadata["example_ids"].value == ["bindbee:globex"]
    assert results["reconciles_with_sources"].passed  # acme's and london's rows are all there
