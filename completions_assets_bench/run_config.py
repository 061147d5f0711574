"""The run config of (c): every provider resource as the code location configures it, pacing off.

Run config for a resource replaces all of its configured values, so it must
restate every field the definitions set. Rather than a copy of today's field
list, this loads `completions_assets.definitions` in the environment of the
run (a child process: the module reads its settings from the environment at
import), takes each provider resource's explicitly set fields, adds the
overrides that turn pacing off and those of an experiment, and checks that the
result builds a valid resource that no longer paces.

Child: `python -m completions_assets_bench.run_config '{"overrides": {...}}'` prints
{"resources": {key: {"config": {...}, "unknown": [...]}}}; `unknown` lists the
experiment's fields the resource does not declare (those are left out).
"""

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from completions_assets.local.launch import REPO
from completions_assets_bench.load_time import definitions_of

if TYPE_CHECKING:  # the child imports it from the code it derives for, which may be an earlier commit's
    from completions_assets.providers.resource import ProviderResource

TIMEOUT_S = 120.0
# Every pacing field a provider resource has had; 0 turns each off. Only those the resource class
# still declares are set (pacing_off), and a resource built with them must report no rate limit.
PACING_FIELDS = ("requests_per_minute", "requests_per_hour", "min_interval_ms")


def pacing_off(resource_type: "type[ProviderResource]") -> dict[str, int]:
    """The overrides that turn `resource_type`'s pacing off."""
    return {name: 0 for name in PACING_FIELDS if name in resource_type.model_fields}


def check_pacing_off(resource: "ProviderResource") -> None:
    """Fail loudly if a resource meant to run unpaced still paces (a new pacing field, say)."""
    limits = resource.rate_limits()
    if limits:
        raise RuntimeError(f"{type(resource).__name__} still paces with {list(limits)}: update PACING_FIELDS")


def code_environment(env: Mapping[str, str], code: Path | None) -> tuple[dict[str, str], Path]:
    """The environment and working directory of a process that loads the product from `code`
    (a directory holding an earlier `completions_assets`; None: this checkout). The working
    directory comes first on a `python -m` process's path, ahead of the editable install, and
    PYTHONPATH still finds the benchmark in this checkout."""
    if code is None:
        return dict(env), REPO
    return dict(env) | {"PYTHONPATH": str(REPO)}, code


def derive(
    env: Mapping[str, str], overrides: Mapping[str, Any] | None = None, *, code: Path | None = None
) -> dict[str, Any]:
    """{"resources": {key: {"config": ...}}} for the run config, and the experiment's unknown fields per resource."""
    request = json.dumps({"overrides": dict(overrides or {})})
    return json_from_module(
        "completions_assets_bench.run_config", [request], env, code, failure="cannot derive the run config"
    )


def json_from_module(
    module: str, args: Sequence[str], env: Mapping[str, str], code: Path | None, *, failure: str
) -> Any:
    """The JSON a `python -m module args` process prints last, run in `code`'s environment.

    Raises:
        RuntimeError: the process failed (`failure`, then the end of its stderr).
    """
    child_env, cwd = code_environment(env, code)
    done = subprocess.run(
        [sys.executable, "-m", module, *args], env=child_env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if done.returncode != 0:
        raise RuntimeError(f"{failure}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def unknown_fields(derived: Mapping[str, Any]) -> dict[str, list[str]]:
    """The experiment's fields each resource does not declare (resources declaring them all left out)."""
    return {key: r["unknown"] for key, r in derived["resources"].items() if r["unknown"]}


def declared_by_none(derived: Mapping[str, Any]) -> list[str]:
    """The experiment's fields, if no provider resource declares any of them (an experiment that
    would change nothing); otherwise []."""
    unknown = unknown_fields(derived)
    if not unknown or len(unknown) < len(derived["resources"]):
        return []
    return sorted({name for names in unknown.values() for name in names})


def save(directory: Path, name: str, derived: Mapping[str, Any]) -> Path:
    """Write a derived run config (JSON is YAML) and return its path."""
    config = {"resources": {key: {"config": r["config"]} for key, r in derived["resources"].items()}}
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def write(
    directory: Path,
    name: str,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    *,
    code: Path | None = None,
) -> Path:
    """Derive and write the run config and return its path; raises if no resource declares an override."""
    derived = derive(env, overrides, code=code)
    if names := declared_by_none(derived):
        raise KeyError(f"no provider resource declares {names}")
    return save(directory, name, derived)


def _main() -> None:
    import completions_assets.definitions as definitions
    from completions_assets.providers.resource import ProviderResource

    overrides = json.loads(sys.argv[1]).get("overrides", {})
    out: dict[str, Any] = {}
    for key, resource in (definitions_of(definitions).resources or {}).items():
        if not isinstance(resource, ProviderResource):
            continue
        declared = type(resource).model_fields
        config = {name: getattr(resource, name) for name in sorted(resource.model_fields_set)}
        config |= pacing_off(type(resource))
        config |= {name: value for name, value in overrides.items() if name in declared}
        check_pacing_off(type(resource)(**config))  # valid as run config, and unpaced
        out[key] = {"config": config, "unknown": sorted(name for name in overrides if name not in declared)}
    if not out:
        raise RuntimeError("the definitions have no provider resource")
    print(json.dumps({"resources": out}, default=str))


if __name__ == "__main__":
    os.environ.setdefault("COMPLETIONS_FRESHNESS_HOUR", "off")
    _main()
