"""The connections one deployment serves (docs/contract.md, "Connections"), declared in a YAML file.

`COMPLETIONS_CONNECTIONS_FILE` names the file; without it, each provider has one
connection, `default`, from the variables of docs/contract.md, "Settings". The file holds
names of environment variables, never secret values: a malformed file stops the
code location from loading with a message naming the file, the connection and
the key. A named variable that is unset fails only that connection's step
(`dagster.EnvVar`), before any request.
"""

import datetime as dt
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import TypeAdapter, ValidationError

from completions_assets.providers.provider import Provider
from completions_assets.providers.resource import ProviderResource
from completions_assets.settings import ConfigurationError, check_base_url

FILE_VARIABLE = "COMPLETIONS_CONNECTIONS_FILE"
DEFAULT = "default"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
COMMON_KEYS = ("name", "base_url", "start_date")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity, like its Provider
class Connection:
    """One connector token or account of a provider."""

    provider: Provider
    name: str
    secrets: Mapping[str, str]  # resource field -> name of the environment variable holding it
    base_url: str | None = None  # None: the provider's base-URL variable or default
    start_date: dt.date | None = None  # no requests for days before it
    options: Mapping[str, Any] = field(default_factory=dict)  # other resource fields (Nexudus timezone)

    @property
    def label(self) -> str:
        return f"{self.provider.name}:{self.name}"

    def configure(self, resource: ProviderResource) -> ProviderResource:
        """Its provider's resource as this connection has it: its base URL, its options and its
        secrets' variables over the provider's settings. A copy, not a new resource: one resource
        serves every connection of a provider, so a run's cost does not grow with resources.

        The `default` connection keeps credentials a resource built by hand was given (values, or
        variables in its `secret_env`); every other connection reads its own variables.
        """
        update = {**self.options}
        if self.base_url is not None:
            update["base_url"] = self.base_url
        given = resource.secret_env or any(getattr(resource, name, None) for name in self.provider.secret_env)
        if not (self.name == DEFAULT and given):
            update["secret_env"] = dict(self.secrets)
        return resource.model_copy(update=update)

    @property
    def pool(self) -> str:
        return f"{self.provider.name}-{self.name}"

    @property
    def storage_dir(self) -> str:
        return f"{self.provider.asset_name}/connection={self.name}"


def load_connections(providers: Sequence[Provider], environ: Mapping[str, str] = os.environ) -> tuple[Connection, ...]:
    """The configured connections of `providers`, in file order (provider by provider)."""
    path = environ.get(FILE_VARIABLE)
    if not path:
        return tuple(default_connection(provider, environ) for provider in providers)
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigurationError(f"{FILE_VARIABLE}={path}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML ({exc})") from None
    return parse_connections(document, providers, source=path)


def default_connection(provider: Provider, environ: Mapping[str, str]) -> Connection:
    """The one connection of a deployment without a connections file."""
    # Only the presence of a variable decides among credential sets (Nexudus: a
    # static token when NEXUDUS_ACCESS_TOKEN is set, else username/password).
    chosen = provider.credential_sets[-1]
    for credentials in provider.credential_sets:
        if all(provider.secret_env[name] in environ for name in credentials):
            chosen = credentials
            break
    names = set(chosen) | set(provider.optional_secrets)
    return Connection(provider, DEFAULT, {name: provider.secret_env[name] for name in sorted(names)})


def parse_connections(document: Any, providers: Sequence[Provider], *, source: str) -> tuple[Connection, ...]:
    """The connections `document` declares; raises one ConfigurationError naming every problem found."""
    by_name = {provider.name: provider for provider in providers}
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: expected a mapping of provider names ({', '.join(by_name)})")
    problems = [
        f"unknown provider {name!r} (known: {', '.join(by_name)})" for name in sorted(set(document) - set(by_name))
    ]
    connections: list[Connection] = []
    for provider in providers:
        entries = document.get(provider.name) or []
        if not isinstance(entries, list):
            problems.append(f"{provider.name}: expected a list of connections")
            continue
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            connection = _connection(provider, entry, f"{provider.name}[{index}]", problems)
            if connection is None:
                continue
            if connection.name in seen:
                problems.append(f"{connection.label}: key 'name': duplicate connection name")
            seen.add(connection.name)
            connections.append(connection)
    if not connections and not problems:
        problems.append("declares no connection")
    if len(problems) == 1:
        raise ConfigurationError(f"{source}: {problems[0]}")
    if problems:
        raise ConfigurationError(f"{source}: {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems))
    return tuple(connections)


def _connection(provider: Provider, entry: Any, where: str, problems: list[str]) -> Connection | None:
    """The connection `entry` declares, or None, with what is wrong with it added to `problems`."""
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping with at least 'name'")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(f"{where}: key 'name': {name!r} must match {NAME.pattern}")
        return None
    found = len(problems)
    where = f"{provider.name}:{name}"
    env_keys = {f"{secret}_env": secret for secret in provider.secret_env}
    allowed = {*COMMON_KEYS, *env_keys, *provider.connection_options}
    problems += [
        f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})" for key in entry if key not in allowed
    ]
    secrets = {}
    for key, secret in env_keys.items():
        if key in entry:
            if _is_env_name(entry[key]):
                secrets[secret] = entry[key]
            else:  # a secret pasted where its variable's name belongs must never be used or echoed
                problems.append(
                    f"{where}: key {key!r}: must name an environment variable (LIKE_THIS), not hold a value"
                )
    declared = {secret for secret in secrets if secret not in provider.optional_secrets}
    if not any(declared == set(credentials) for credentials in provider.credential_sets):
        sets = " or ".join(" and ".join(f"{name}_env" for name in c) for c in provider.credential_sets)
        given = ", ".join(f"{secret}_env" for secret in sorted(declared)) or "none"
        problems.append(f"{where}: set exactly one of: {sets} (given: {given})")
    for secret in provider.optional_secrets:
        secrets.setdefault(secret, provider.secret_env[secret])
    base_url = entry.get("base_url")
    if base_url is not None:
        _collect(problems, check_base_url, str(base_url), name=f"{where}: key 'base_url'")
    options = {
        key: _collect(problems, _option, provider, key, entry[key], where)
        for key in provider.connection_options
        if key in entry
    }
    if "timezone" in options:
        _collect(problems, _check_zone, options["timezone"], f"{where}: key 'timezone'")
    start_date = _collect(problems, _start_date, entry.get("start_date"), where)
    if len(problems) > found:
        return None
    return Connection(provider, name, secrets, base_url, start_date, options)


def _collect(problems: list[str], check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`check(*args, **kwargs)`, its ConfigurationError added to `problems` instead of raised."""
    try:
        return check(*args, **kwargs)
    except ConfigurationError as exc:
        problems.append(str(exc))
        return None


def _option(provider: Provider, key: str, value: Any, where: str) -> Any:
    """`value` as the resource field `key` takes it (a connection's options are not validated again)."""
    try:
        field = provider.settings.model_fields[key]
        return TypeAdapter(cast(Any, field.annotation)).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise ConfigurationError(f"{where}: key {key!r}: {value!r} is not valid ({reason})") from None


def _is_env_name(value: Any) -> bool:
    return isinstance(value, str) and bool(ENV_NAME.fullmatch(value)) and value.isupper()


def _start_date(value: Any, where: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"{where}: key 'start_date': {value!r} is not a date (YYYY-MM-DD)") from None


def _check_zone(value: Any, where: str) -> None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"{where}: {value!r} is not an IANA time zone") from None
