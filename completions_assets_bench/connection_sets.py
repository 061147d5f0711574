"""The connections the "connections" section declares: a file per set, and names with data on the measured day.

A set is N Bindbee connector tokens and M Nexudus accounts, written as the YAML
file `COMPLETIONS_CONNECTIONS_FILE` names (the format of
completions_assets/local/connections.yaml). Each entry names the variables the
sandbox reads for that connection (`BINDBEE_CONNECTOR_TOKEN_B001`, ...), so
`sandbox_environment` fills in values the sandbox accepts, as `make demo` does.

By the sandbox's design about one connection-day in nine is empty; a set takes
the first names (b001, b002, ...; n001, ...) whose data holds the measured day,
so "N connections × D records a day" is what every connection serves.
"""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from completions_assets.connections import FILE_VARIABLE, Connection, load_connections
from completions_assets.providers import PROVIDERS
from completions_assets.sandbox.config import credential_name
from completions_assets.sandbox.data import connection_seed
from completions_assets.sandbox.event_times import is_empty_day
from completions_assets_bench.workload import SEED

# The variables each entry names: the sandbox's own for that connection (config.credential_name).
_SECRETS = {
    "bindbee": {"connector_token_env": "BINDBEE_CONNECTOR_TOKEN"},
    "nexudus": {"username_env": "NEXUDUS_USERNAME", "password_env": "NEXUDUS_PASSWORD"},
}


@dataclass(frozen=True)
class ConnectionSet:
    bindbee: int
    nexudus: int
    skip: int = 0  # names with data passed over first, for a set whose tokens no earlier run has used

    @property
    def total(self) -> int:
        return self.bindbee + self.nexudus

    @property
    def label(self) -> str:
        parts = [f"{n} {p.capitalize()}" for p, n in (("bindbee", self.bindbee), ("nexudus", self.nexudus)) if n]
        return " + ".join(parts)

    def names(self, day: dt.date) -> dict[str, list[str]]:
        sizes = (("bindbee", self.bindbee), ("nexudus", self.nexudus))
        return {p: list(_with_data(p, n + self.skip, day))[self.skip :] if n else [] for p, n in sizes}

    def write(self, directory: Path, day: dt.date) -> Path:
        """The connections file of this set (names with data on `day`)."""
        document = {
            provider: [
                {"name": name} | {key: credential_name(base, name) for key, base in _SECRETS[provider].items()}
                for name in names
            ]
            for provider, names in self.names(day).items()
            if names
        }
        path = directory / f"connections-{self.bindbee}-{self.nexudus}-{self.skip}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path


def declared(path: Path) -> tuple[Connection, ...]:
    """The connections a file declares, as the code location reads them."""
    return load_connections(PROVIDERS, {FILE_VARIABLE: str(path)})


def _with_data(provider: str, count: int, day: dt.date) -> Iterator[str]:
    found, number = 0, 0
    while found < count:
        number += 1
        name = f"{provider[0]}{number:03d}"
        if not is_empty_day(connection_seed(SEED, name), provider, day):
            found += 1
            yield name
