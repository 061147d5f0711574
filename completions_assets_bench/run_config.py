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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from completions_assets.local.launch import REPO

TIMEOUT_S = 120.0


def derive(env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"resources": {key: {"config": ...}}} for the run config, and the experiment's unknown fields per resource."""
    done = subprocess.run(
        [sys.executable, "-m", "completions_assets_bench.run_config", json.dumps({"overrides": dict(overrides or {})})],
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cannot derive the run config: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write(directory: Path, name: str, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Path:
    """Write the derived run config (JSON is YAML) and return its path; raises if an override is unknown."""
    derived = derive(env, overrides)
    unknown = {key: r["unknown"] for key, r in derived["resources"].items() if r["unknown"]}
    if unknown and all(r["unknown"] for r in derived["resources"].values()):
        raise KeyError(f"no provider resource declares {sorted({n for names in unknown.values() for n in names})}")
    config = {"resources": {key: {"config": r["config"]} for key, r in derived["resources"].items()}}
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _main() -> None:
    import completions_assets.definitions as definitions
    from completions_assets.providers.resource import ProviderResource
    from completions_assets_bench.pipeline import check_pacing_off, pacing_off

    overrides = json.loads(sys.argv[1]).get("overrides", {})
    out: dict[str, Any] = {}
    for key, resource in (definitions.defs.resources or {}).items():
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
