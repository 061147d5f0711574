"""The connections file: what it declares, and every way it can be wrong."""

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from completions_assets.connections import FILE_VARIABLE, load_connections
from completions_assets.defs.resources import build_resources
from completions_assets.providers import PROVIDERS
from completions_assets.settings import ConfigurationError, Settings

pytestmark = pytest.mark.unit

SETTINGS = Settings(start_date=dt.date(2024, 1, 1), timezone="Europe/Berlin", lookback_days=3, data_root="/tmp/x")
EXAMPLE = """
bindbee:
  - name: acme
    connector_token_env: BINDBEE_CONNECTOR_TOKEN_ACME
    api_key_env: BINDBEE_API_KEY
    base_url: https://api-eu.bindbee.dev
    start_date: 2025-03-01
  - name: globex
    connector_token_env: BINDBEE_CONNECTOR_TOKEN_GLOBEX
nexudus:
  - name: london
    username_env: NEXUDUS_USERNAME_LONDON
    password_env: NEXUDUS_PASSWORD_LONDON
    base_url: https://spaces.nexudus.com
    timezone: Europe/London
  - name: paris
    access_token_env: NEXUDUS_ACCESS_TOKEN_PARIS
"""


def load(tmp_path: Path, text: str, **environ: str):
    path = tmp_path / "connections.yaml"
    path.write_text(textwrap.dedent(text))
    return load_connections(PROVIDERS, {FILE_VARIABLE: str(path), **environ})


def test_the_example_declares_four_connections_with_their_settings(tmp_path):
    acme, globex, london, paris = load(tmp_path, EXAMPLE)
    assert [c.label for c in (acme, globex, london, paris)] == [
        "bindbee:acme",
        "bindbee:globex",
        "nexudus:london",
        "nexudus:paris",
    ]
    assert acme.secrets == {"connector_token": "BINDBEE_CONNECTOR_TOKEN_ACME", "api_key": "BINDBEE_API_KEY"}
    assert globex.secrets["api_key"] == "BINDBEE_API_KEY"  # the organisation's key, by default
    assert (acme.start_date, acme.base_url, globex.start_date) == (
        dt.date(2025, 3, 1),
        "https://api-eu.bindbee.dev",
        None,
    )
    assert london.options == {"timezone": "Europe/London"} and paris.secrets == {
        "access_token": "NEXUDUS_ACCESS_TOKEN_PARIS"
    }
    assert (acme.pool, acme.storage_dir) == (
        "bindbee-acme",
        "bindbee_completions/connection=acme",
    )


def test_one_resource_per_provider_and_each_connection_configures_it_with_variable_names_only(tmp_path):
    connections = {c.name: c for c in load(tmp_path, EXAMPLE)}
    resources = build_resources(tuple(connections.values()), SETTINGS)
    assert set(resources) == {"bindbee", "nexudus", "storage"}
    bindbee, nexudus = resources["bindbee"], resources["nexudus"]
    acme, globex = connections["acme"].configure(bindbee), connections["globex"].configure(bindbee)
    london, paris = connections["london"].configure(nexudus), connections["paris"].configure(nexudus)
    assert acme.secret_env == {"connector_token": "BINDBEE_CONNECTOR_TOKEN_ACME", "api_key": "BINDBEE_API_KEY"}
    assert acme.connector_token is None and acme.api_key is None  # values are read when a step starts
    assert (acme.base_url, globex.base_url) == ("https://api-eu.bindbee.dev", bindbee.base_url)
    assert london.timezone == "Europe/London" and paris.timezone == "Europe/Berlin"  # COMPLETIONS_TIMEZONE
    assert bindbee.secret_env == {} and nexudus.timezone == "Europe/Berlin"  # a connection's own stays its own


def test_a_bindbee_connection_sets_its_expansion_and_email_options(tmp_path):
    text = EXAMPLE.replace("    start_date: 2025-03-01\n", "    start_date: 2025-03-01\n    include_email: true\n", 1)
    text = text.replace(
        "BINDBEE_CONNECTOR_TOKEN_GLOBEX\n", "BINDBEE_CONNECTOR_TOKEN_GLOBEX\n    expand_relations: false\n"
    )
    acme, globex = (c.configure(build_resources([c], SETTINGS)["bindbee"]) for c in load(tmp_path, text)[:2])
    assert (acme.include_email, acme.expand_relations) == (True, True)
    assert (globex.include_email, globex.expand_relations) == (False, False)  # e-mail off by default


def test_without_a_file_each_provider_has_a_default_connection():
    bindbee, nexudus = load_connections(PROVIDERS, {})
    assert (bindbee.label, nexudus.label) == ("bindbee:default", "nexudus:default")
    assert bindbee.secrets == {
        "api_key": "BINDBEE_API_KEY",
        "connector_token": "BINDBEE_CONNECTOR_TOKEN",
    }
    assert nexudus.secrets == {"password": "NEXUDUS_PASSWORD", "username": "NEXUDUS_USERNAME"}
    _, static = load_connections(PROVIDERS, {"NEXUDUS_ACCESS_TOKEN": "x"})
    assert static.secrets == {"access_token": "NEXUDUS_ACCESS_TOKEN"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "bindbee:\n  - name: acme\n    connector_token_env: T\n    colour: red\n",
            r"bindbee:acme: unknown key 'colour'",
        ),
        ("bindbee:\n  - name: Acme\n    connector_token_env: T\n", r"bindbee\[0\]: key 'name': 'Acme' must match"),
        (
            "bindbee:\n  - name: acme\n    connector_token_env: T\n  - name: acme\n    connector_token_env: U\n",
            r"bindbee:acme: key 'name': duplicate connection name",
        ),
        (
            "nexudus:\n  - name: london\n    access_token_env: T\n    timezone: Mars/Olympus\n",
            r"nexudus:london: key 'timezone': 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            "bindbee:\n  - name: acme\n    connector_token_env: T\n    base_url: http://api.bindbee.dev\n",
            r"bindbee:acme: key 'base_url': base URL must be https://",
        ),
        (
            "bindbee:\n  - name: acme\n    connector_token_env: ct_live_8f3a9b2c\n",
            r"bindbee:acme: key 'connector_token_env': must name an environment variable",
        ),
        ("bindbee:\n  - name: acme\n", r"bindbee:acme: set exactly one of: connector_token_env \(given: none\)"),
        (
            "nexudus:\n  - name: london\n    username_env: U\n",
            r"nexudus:london: set exactly one of: access_token_env or username_env and password_env "
            r"\(given: username_env\)",
        ),
        (  # which one would be used is a guess: refused
            "nexudus:\n  - name: london\n    access_token_env: T\n    username_env: U\n    password_env: P\n",
            r"nexudus:london: set exactly one of: .* \(given: access_token_env, password_env, username_env\)",
        ),
        (
            "bindbee:\n  - name: acme\n    connector_token_env: T\n    start_date: soon\n",
            r"bindbee:acme: key 'start_date': 'soon' is not a date",
        ),
        (
            "bindbee:\n  - name: acme\n    connector_token_env: T\n    include_email: maybe\n",
            r"bindbee:acme: key 'include_email': 'maybe' is not valid \(Input should be a valid boolean",
        ),
        ("moodle:\n  - name: x\n", r"unknown provider 'moodle'"),
        ("bindbee: [\n", r"not valid YAML"),
    ],
)
def test_a_malformed_file_names_the_file_connection_and_key(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        load(tmp_path, text)
    assert str(tmp_path / "connections.yaml") in str(caught.value)
    assert "ct_live_8f3a9b2c" not in str(caught.value)  # a pasted secret is never echoed


def test_every_problem_of_a_file_is_named_at_once(tmp_path):
    text = (
        "bindbee:\n  - name: acme\n    connector_token_env: T\n    colour: red\n"
        "  - name: globex\n    connector_token_env: T\n    start_date: soon\n"
        "nexudus:\n  - name: london\n    username_env: U\n    timezone: Mars/Olympus\n"
        "moodle: []\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load(tmp_path, text)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{tmp_path / 'connections.yaml'}: 5 problems:"
    expected = [
        "- unknown provider 'moodle'",
        "- bindbee:acme: unknown key 'colour'",
        "- bindbee:globex: key 'start_date': 'soon' is not a date",
        "- nexudus:london: set exactly one of: access_token_env or username_env and password_env",
        "- nexudus:london: key 'timezone': 'Mars/Olympus' is not an IANA time zone",
    ]
    assert len(lines) == 1 + len(expected)
    assert all(line.startswith(prefix) for line, prefix in zip(lines[1:], expected, strict=True)), lines


def test_a_malformed_file_stops_the_code_location_from_loading(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text("bindbee:\n  - name: acme\n    connector_token_env: T\n    colour: red\n")
    env = {"PATH": "/usr/bin:/bin", FILE_VARIABLE: str(path), "COMPLETIONS_DATA_ROOT": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", "from completions_assets.definitions import defs; defs()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"{path}: bindbee:acme: unknown key 'colour'" in done.stderr
