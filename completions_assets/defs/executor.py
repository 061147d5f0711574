"""The executor: Dagster's default one (a process per step, or `in_process`), whose step
processes are forked from a forkserver that has imported the code location and the
instance's storage once, instead of each being a fresh interpreter that imports them again.

Run config still chooses: `in_process`, `multiprocess` with any `start_method`
(`spawn` is Dagster's default), `max_concurrent` and the rest; only a `multiprocess`
config without a `start_method` gets the forkserver.
"""

import os
import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from completions_assets.settings import ConfigurationError

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

# The Celery profile (docs/deployment.md): `COMPLETIONS_EXECUTOR=celery` wherever the code
# location loads (the run's process and every Celery worker) sends each step to a worker.
EXECUTOR_VARIABLE = "COMPLETIONS_EXECUTOR"
# The broker and result backend, read from the environment when a run starts; the workers
# read the same variables through deploy/celery.yaml. `task_track_started`: a worker records in
# the result backend which worker started a step, which the run's watch over lost workers reads
# (completions_assets/defs/celery_watch.py); the workers read it from deploy/celery.yaml too.
CELERY_CONFIG: dict[str, Any] = {
    "broker": {"env": "COMPLETIONS_CELERY_BROKER"},
    "backend": {"env": "COMPLETIONS_CELERY_BACKEND"},
    "config_source": {"task_track_started": True},
}
# Seconds a worker running a step may leave pings unanswered before the run fails that step as
# lost. An environment variable and not deploy/celery.yaml: the workers validate that file against
# dagster-celery's own executor config, which has no such field, and only the run's process reads it.
LOST_AFTER_VARIABLE = "COMPLETIONS_CELERY_WORKER_LOST_AFTER"


def select_executor(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    """The executor `COMPLETIONS_EXECUTOR` names: unset or `multiprocess`, the default one; `celery`, Celery's."""
    name = environ.get(EXECUTOR_VARIABLE) or "multiprocess"
    if name == "multiprocess":
        return executor
    if name == "celery":
        # Imported only here: the celery extra is installed only where the profile is used.
        from celery.exceptions import DuplicateTaskNameWarning

        from completions_assets.defs.celery_watch import LOST_AFTER_FIELD, LOST_AFTER_S, watched_celery_executor

        # dagster-celery builds its `execute_plan` task anew for every step it submits, and
        # celery 5.7 warns on each that the name is taken, although the task is the same one.
        warnings.filterwarnings("ignore", "Task name 'execute_plan' is already registered", DuplicateTaskNameWarning)
        lost_after = _lost_after(environ.get(LOST_AFTER_VARIABLE) or str(LOST_AFTER_S))
        return watched_celery_executor.configured(CELERY_CONFIG | {LOST_AFTER_FIELD: lost_after}, name="celery")
    raise ConfigurationError(f"{EXECUTOR_VARIABLE}={name!r}: expected 'multiprocess' or 'celery'")


def _lost_after(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{LOST_AFTER_VARIABLE}={raw!r} is not a whole number of seconds >= 1")
    return int(raw)
