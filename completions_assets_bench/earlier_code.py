"""An earlier commit's product package, to run as (c) beside the shipped code.

A setting can be put back through run config; a code change cannot. `checkout`
extracts `completions_assets` as of a commit (`git archive`) into a directory of
its own; a process started there (run_config.code_environment) imports that
package ahead of this checkout's, and everything else (the sandbox, the
instance, the benchmark) stays as it is.
"""

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import yaml

from completions_assets.local.launch import INSTANCE_CONFIG, REPO

PACKAGE = "completions_assets"
GIT_TIMEOUT_S = 60.0


def checkout(commit: str, into: Path) -> Path:
    """A directory holding `commit`'s product package and nothing else of the tree; raises
    RuntimeError with git's reason if the commit cannot be read (no git, a shallow clone)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, PACKAGE],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except OSError as exc:
        raise RuntimeError(f"git cannot run: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"]
        raise RuntimeError(f"git archive {commit}: {reason[-1]}")
    target = into / f"code-{commit}"
    with tarfile.open(fileobj=BytesIO(done.stdout)) as archive:
        archive.extractall(target, filter="data")
    return target


def instance_config(code: Path) -> Path:
    """The local instance configuration to run `code` with: this checkout's, with Dagster's own
    SQLite event log when `code`'s package has no `completions_assets.local.event_log` (from
    before the local event log kept its connections), as it ran then."""
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    if not (code / PACKAGE / "local" / "event_log.py").exists():
        config.pop("event_log_storage", None)
    path = code / "dagster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
