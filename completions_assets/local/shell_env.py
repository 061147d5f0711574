"""`make env`: the `export` lines of the environment `make dev` runs with, for a second shell.

`make dev` writes them to sandbox.env in its instance directory while the sandbox
runs (and removes the file when it stops), so `eval "$(make -s env)"` points a
shell at that sandbox and instance, and the README's CLI commands run there.
"""

import shlex
import sys
from collections.abc import Mapping, Sequence

from completions_assets.connections import Connection
from completions_assets.local.launch import local_dagster_home
from completions_assets.sandbox.config import DEFAULT_CREDENTIALS

ENV_FILE = "sandbox.env"
_PLAIN = ("BINDBEE_BASE_URL", "NEXUDUS_BASE_URL", "DAGSTER_HOME")


def shell_exports(env: Mapping[str, str], connections: Sequence[Connection]) -> str:
    """`export NAME=value` for the settings and every credential variable `connections` name."""
    names = [*_PLAIN, *sorted(n for n in env if n.startswith("COMPLETIONS_")), *DEFAULT_CREDENTIALS]
    names += [variable for c in connections for variable in c.secrets.values()]
    unique = [name for name in dict.fromkeys(names) if name in env]
    return "".join(f"export {name}={shlex.quote(env[name])}\n" for name in unique)


def main() -> int:
    path = local_dagster_home() / ENV_FILE
    try:
        sys.stdout.write(path.read_text())
    except FileNotFoundError:
        print(f"no sandbox.env at {path}: start `make dev` in this directory first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
