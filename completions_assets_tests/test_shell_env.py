"""`make env`: the export lines of a running `make dev`, read back by a shell exactly."""

import subprocess

import pytest

from completions_assets.connections import parse_connections
from completions_assets.local import shell_env
from completions_assets.providers import PROVIDERS

pytestmark = pytest.mark.unit

CONNECTIONS = parse_connections(
    {"bindbee": [{"name": "acme", "connector_token_env": "BINDBEE_CONNECTOR_TOKEN_ACME"}]}, PROVIDERS, source="test"
)


def test_a_shell_reads_back_every_setting_and_credential_exactly(tmp_path):
    env = {
        "BINDBEE_BASE_URL": "http://127.0.0.1:4321",
        "NEXUDUS_BASE_URL": "http://127.0.0.1:4321",
        "DAGSTER_HOME": str(tmp_path / "a home with spaces"),
        "COMPLETIONS_CONNECTIONS_FILE": "/x/it's here.yaml",
        "BINDBEE_API_KEY": "key with $dollar and `backticks`",
        "BINDBEE_CONNECTOR_TOKEN_ACME": 'token "quoted"',
        "PATH": "/not/exported",
    }
    exports = tmp_path / "sandbox.env"
    exports.write_text(shell_env.shell_exports(env, CONNECTIONS))
    names = [line.split("=", 1)[0].removeprefix("export ") for line in exports.read_text().splitlines()]
    assert "PATH" not in names and len(names) == len(set(names)) == len(env) - 1
    script = f'. "{exports}"; for n in {" ".join(names)}; do printf "%s=%s\\0" "$n" "${{!n}}"; done'
    done = subprocess.run(["bash", "-c", script], env={}, capture_output=True, text=True, check=True)
    read = dict(item.split("=", 1) for item in done.stdout.split("\0") if item)
    assert read == {name: env[name] for name in names}


def test_without_a_running_make_dev_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert shell_env.main() == 1
    assert "start `make dev` in this directory first" in capsys.readouterr().err
    (tmp_path / ".dagster_home").mkdir()
    (tmp_path / ".dagster_home" / shell_env.ENV_FILE).write_text("export DAGSTER_HOME=/here\n")
    assert shell_env.main() == 0
    assert capsys.readouterr().out == "export DAGSTER_HOME=/here\n"
