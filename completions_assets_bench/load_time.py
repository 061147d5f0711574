"""How long the code location takes to load, in a fresh process, as every Dagster entry point loads it.

The measure is the definitions loaded: from the start of `import
completions_assets.definitions` (which imports Dagster and the product) to the
resolved repository: `defs()` (the `@dg.definitions` function, which reads the
settings and connections and builds the assets, resources and checks of every
declared connection) and `get_repository_def()` on its result, which the CLI,
the code server and `dg check defs` all do before anything else. The
interpreter's own start is left out. The repository snapshot a code server then
sends the UI is timed after it, apart.

Child: `python -m completions_assets_bench.load_time` prints
{"import_s": ..., "load_s": ..., "snapshot_s": ...} (load_s includes import_s).
"""

import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Nothing of Dagster or the product at module level: the child would have imported it before its clock starts.

TIMEOUT_S = 300.0


@dataclass
class LoadTime:
    import_s: float
    load_s: float  # import and the resolved repository
    snapshot_s: float  # the repository snapshot, after the load


def measure_load(env: Mapping[str, str], *, code: Path | None = None, repeats: int = 3) -> LoadTime:
    """Medians of `repeats` fresh processes, after one unmeasured that compiles `code`'s bytecode."""
    runs = [_once(env, code) for _ in range(repeats + 1)][1:]
    return LoadTime(
        *(statistics.median(getattr(r, name) for r in runs) for name in ("import_s", "load_s", "snapshot_s"))
    )


def _once(env: Mapping[str, str], code: Path | None) -> LoadTime:
    from completions_assets_bench.run_config import json_from_module

    measured = json_from_module(
        "completions_assets_bench.load_time", [], env, code, failure="the definitions did not load"
    )
    return LoadTime(**measured)


def definitions_of(module: ModuleType) -> Any:
    """The Definitions of `completions_assets.definitions` as either code has it: an object before the
    definitions loaded lazily, a `@dg.definitions` function since. (Any: no Dagster imported here.)"""
    defs = module.defs
    return defs if hasattr(defs, "get_repository_def") else defs()


def _main() -> None:
    began = time.perf_counter()
    import completions_assets.definitions as definitions

    imported = time.perf_counter()
    repository = definitions_of(definitions).get_repository_def()
    loaded = time.perf_counter()
    from dagster._core.remote_representation.external_data import RepositorySnap

    RepositorySnap.from_def(repository)
    snapshot = time.perf_counter()
    print(json.dumps({"import_s": imported - began, "load_s": loaded - began, "snapshot_s": snapshot - loaded}))


if __name__ == "__main__":
    _main()
