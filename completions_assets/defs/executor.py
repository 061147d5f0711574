"""The executor: Dagster's default one (a process per step, or `in_process`), whose step
processes are forked from a forkserver that has imported the code location and the
instance's storage once, instead of each being a fresh interpreter that imports them again.

Run config still chooses: `in_process`, `multiprocess` with any `start_method`
(`spawn` is Dagster's default), `max_concurrent` and the rest; only a `multiprocess`
config without a `start_method` gets the forkserver.
"""

from typing import Any

import dagster as dg

# Imported by the forkserver before it forks the first step (see the module).
PRELOAD_MODULE = "completions_assets.steps.forkserver_preload"
FORKSERVER = {"forkserver": {"preload_modules": [PRELOAD_MODULE]}}


def forkserver_by_default(config: dict[str, Any]) -> dict[str, Any]:
    """The executor config with the forkserver filled in where the run config names no start method.

    Named explicitly, because `forkserver: {}` preloads nothing of the code location in
    Dagster 1.13, whatever the config's description says."""
    ((mode, settings),) = config.items()
    if mode == "multiprocess" and not settings.get("start_method"):
        settings = {**settings, "start_method": FORKSERVER}
    return {mode: settings}


executor = dg.multi_or_in_process_executor.configured(
    forkserver_by_default, config_schema=dg.multi_or_in_process_executor.config_schema.as_field()
)
