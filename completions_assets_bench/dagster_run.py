"""(c) The full three-asset range run through Dagster, launched as a user launches it.

    dg launch --job completions_job --partition-range A...B \\
        -m completions_assets.definitions -c pacing-off.yaml

one run in the CLI process, provider steps in their own processes (the
default multiprocess executor). Pacing is switched off through run config,
as the sandbox enforces no limits in these runs; `run_config` derives that
file from the definitions themselves. Without a file the resources pace as
the definitions configure them. A single day runs as `--partition DAY`, as a
day's run is launched.
"""

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from completions_assets.local.launch import materialize_command
from completions_assets.local.run_report import check_results
from completions_assets_bench.procs import run_command
from completions_assets_bench.run_config import code_environment
from completions_assets_bench.workload import Range


@dataclass
class DagsterRun:
    wall_s: float
    cpu_s: float
    peak_rss_mb: dict[str, float]  # "cli" and each step key
    step_s: dict[str, float] = field(default_factory=dict)  # each step's start to success
    startup_s: float = 0.0  # process start to the first step starting
    events: int = 0  # entries the run wrote to the event log
    materializations: int = 0  # asset-partitions the run materialized
    check_results: int = 0  # asset check evaluations the run stored, one per check and partition
    # CPU seconds (sampled every 0.1 s, so a process's last tenth may be missing): "cli", each
    # step key, and "other" for the rest of the tree (the forkserver, compute-log capture).
    cpu_s_by_process: dict[str, float] = field(default_factory=dict)


def command(days: Range, run_config: Path | None) -> list[str]:
    extra = () if run_config is None else ("-c", str(run_config))
    command = materialize_command(days.first.isoformat(), days.last.isoformat(), *extra)
    if days.days == 1:  # as a day's run is launched; edited in place so the rest stays launch.py's command
        at = command.index("--partition-range")
        command[at : at + 2] = ["--partition", days.first.isoformat()]
    return command


def materialize(
    days: Range,
    *,
    env: dict[str, str],
    run_config: Path | None,
    log: Path,
    timeout_s: float,
    code: Path | None = None,
) -> DagsterRun:
    """The run, with the product loaded from `code` (an earlier commit's package) if given."""
    run_env, cwd = code_environment(env, code)
    done = run_command(command(days, run_config), env=run_env, cwd=cwd, log=log, timeout_s=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"dagster run over {days.cli} failed (exit {done.returncode}); see {log}")
    starts, ends, pids, events, materializations, check_results = _step_events(env["DAGSTER_HOME"], log)
    peaks = {"cli": done.peak_rss_mb.get(done.pid, 0.0)}
    peaks |= {step: 0.0 if pid is None else done.peak_rss_mb.get(pid, 0.0) for step, pid in pids.items()}
    cpu = {"cli": done.cpu_s_by_pid.get(done.pid, 0.0)}
    cpu |= {step: 0.0 if pid is None else done.cpu_s_by_pid.get(pid, 0.0) for step, pid in pids.items()}
    cpu["other"] = max(0.0, done.cpu_s - sum(cpu.values()))
    return DagsterRun(
        wall_s=done.wall_s,
        cpu_s=done.cpu_s,
        peak_rss_mb=peaks,
        step_s={step: ends[step] - starts[step] for step in starts if step in ends},
        startup_s=min(starts.values()) - done.began,
        events=events,
        materializations=materializations,
        check_results=check_results,
        cpu_s_by_process=cpu,
    )


def _step_events(
    home: str, log: Path
) -> tuple[dict[str, float], dict[str, float], dict[str, int | None], int, int, int]:
    """Start and success times and the process id of each step of the newest run, its event count,
    its materializations and its check results."""
    instance = dg.DagsterInstance.from_config(home)
    try:
        run = instance.get_runs(limit=1)[0]
        if run.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"run {run.run_id} ended {run.status.value}; see {log}")
        failed = sorted({f"{e.check_name} {e.partition}" for e in check_results(instance, run.run_id) if not e.passed})
        if failed:  # a fast wrong answer is no benchmark
            raise RuntimeError(f"run {run.run_id}: {len(failed)} check results failed, e.g. {failed[:3]}; see {log}")
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        pids: dict[str, int | None] = {}  # a step event's pid is optional in Dagster's types
        entries = instance.all_logs(run.run_id)
        materializations = evaluations = 0
        for entry in entries:
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                materializations += 1
            elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluations += 1
            elif event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key], pids[event.step_key] = entry.timestamp, event.pid
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                ends[event.step_key] = entry.timestamp
        return starts, ends, pids, len(entries), materializations, evaluations
    finally:
        instance.dispose()
