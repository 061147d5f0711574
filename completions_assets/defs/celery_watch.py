"""The Celery profile's executor: dagster-celery's, plus a watch that fails a step whose worker
stopped answering (a lost machine), so that its run fails naming the step instead of waiting forever.

Celery acknowledges a step's task when a worker takes it: if that worker's machine dies, nobody
answers, and dagster-celery's loop would wait for the task's result for ever. Here the workers
record when they start a task (`task_track_started`: the result backend holds the task's state
STARTED with the worker's name), and while a run's steps execute, a thread pings each worker that
runs one of its steps (Celery's remote control). A worker that has not answered for
`worker_lost_after_seconds` (at least `MIN_MISSES` pings in a row) is lost: the watch stores
a failure for its task in the result backend, dagster-celery's loop reads it as it reads any
failed task, and the run fails with `[<step key>]: ... WorkerLostError: worker ... stopped answering`.
The run's tasks not started yet are failed and revoked with it (the lost worker may have reserved one).

A busy worker is not lost: with the prefork pool (the workers' default, docs/deployment.md) the
step runs in a pool process while the worker's main process answers pings. A worker started with
`--pool=solo` would answer none while it runs a step, and must not be used with this executor.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from celery import Celery, states
from celery.exceptions import WorkerLostError

# dagster-celery's executor and its loop: there is no public hook to learn each step's task, so
# `execute` runs the loop itself with a submission function that wraps dagster-celery's
# (`_submit_task`, the function its own `execute` passes; private, but the loop's contract).
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.executor import CELERY_CONFIG as CELERY_EXECUTOR_CONFIG
from dagster_celery.executor import CeleryExecutor, _submit_task, celery_executor
from dagster_celery.make_app import make_app

LOG = logging.getLogger(__name__)
LOST_AFTER_S = 60  # the default: a worker silent this long has lost its steps
MIN_MISSES = 3  # and it missed at least this many pings in a row


class WorkerWatch:
    """Follows a run's step tasks; fails, in the result backend, those whose worker stopped answering."""

    def __init__(self, app: Celery, lost_after_s: float) -> None:
        self.app = app
        self.lost_after_s = lost_after_s
        self.every_s = min(max(lost_after_s / 4, 0.5), 15.0)  # a few pings within the grace period
        self.ping_timeout_s = min(self.every_s, 2.0)
        self._steps: dict[str, str] = {}  # task id -> step key
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._answered: dict[str, float] = {}  # worker name -> when it last answered (or was first seen)
        self._misses: dict[str, int] = {}  # worker name -> pings missed in a row

    def follow(self, step_key: str, task_id: str) -> None:
        with self._lock:
            self._steps[task_id] = step_key

    @contextmanager
    def running(self) -> Iterator[None]:
        """The watch's thread for the block's duration; stopped and joined when the block ends."""
        thread = threading.Thread(target=self._run, name="celery-worker-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except Exception:  # the broker or backend unreachable for a moment: the next round tries again
                LOG.exception("the watch over the run's Celery workers could not check them")

    def check(self) -> None:
        """One round: the started tasks' workers pinged; the tasks of a lost worker failed, and with
        them the run's tasks not started yet."""
        with self._lock:
            following = dict(self._steps)
        running: dict[str, list[str]] = {}  # worker name -> its started task ids
        pending: list[str] = []
        for task_id in following:
            meta = self.app.backend.get_task_meta(task_id)
            if meta["status"] in states.READY_STATES:
                with self._lock:
                    self._steps.pop(task_id, None)
            elif meta["status"] == states.STARTED and isinstance(meta["result"], dict):
                running.setdefault(str(meta["result"]["hostname"]), []).append(task_id)
            else:
                pending.append(task_id)
        if not running:
            return
        now = time.monotonic()
        replies = self.app.control.ping(destination=list(running), timeout=self.ping_timeout_s, limit=len(running))
        answering = {name for reply in replies for name in reply}
        lost = []
        for worker, task_ids in running.items():
            self._answered.setdefault(worker, now)
            if worker in answering:
                self._answered[worker], self._misses[worker] = now, 0
                continue
            self._misses[worker] = self._misses.get(worker, 0) + 1
            silent = now - self._answered[worker]
            if self._misses[worker] >= MIN_MISSES and silent >= self.lost_after_s:
                lost.append(worker)
                for task_id in task_ids:
                    self._fail(
                        task_id,
                        f"worker {worker} stopped answering while running step {following[task_id]} (task"
                        f" {task_id}): no answer to {self._misses[worker]} pings over {silent:.0f} s"
                        f" (worker_lost_after_seconds={self.lost_after_s:g})",
                        states.STARTED,
                    )
        if lost and pending:
            # The run fails now (dagster-celery submits no step after a failed one, but waits for
            # every task it submitted). A task not started yet may be one the lost worker had
            # reserved: Redis would hand it to another worker only after its visibility timeout,
            # for a run already failed. So the run's tasks not started are failed and revoked.
            self.app.control.revoke(pending)
            for task_id in pending:
                self._fail(
                    task_id,
                    f"step {following[task_id]} not started (task {task_id}, revoked): the run stopped when"
                    f" worker {', '.join(lost)} was lost",
                    states.PENDING,
                )

    def _fail(self, task_id: str, message: str, expected: str) -> None:
        if self.app.backend.get_task_meta(task_id)["status"] != expected:
            return  # it moved on after all
        self.app.backend.mark_as_failure(task_id, WorkerLostError(message))
        with self._lock:
            self._steps.pop(task_id, None)


class WatchedCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor, with a `WorkerWatch` over each run's steps."""

    def __init__(self, base: CeleryExecutor, lost_after_s: float) -> None:
        args = base.app_args()
        super().__init__(
            retries=base.retries,
            broker=args["broker"],
            backend=args["backend"],
            include=args["include"],
            config_source=vars(args["config_source"]),
        )
        self.lost_after_s = lost_after_s

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        app = make_app(self.app_args())  # the watch's own app: its connections are its thread's
        watch = WorkerWatch(app, self.lost_after_s)

        def submit(app: Celery, context: Any, step: Any, queue: str, priority: int, known_state: Any) -> Any:
            result = _submit_task(app, context, step, queue, priority, known_state)
            watch.follow(step.key, result.id)
            return result

        try:
            with watch.running():
                yield from core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)
        finally:
            app.close()


LOST_AFTER_FIELD = "worker_lost_after_seconds"


@dg.executor(
    name="celery",
    config_schema={
        **CELERY_EXECUTOR_CONFIG,
        LOST_AFTER_FIELD: dg.Field(
            dg.IntSource,
            is_required=False,
            default_value=LOST_AFTER_S,
            description="Seconds a worker running one of the run's steps may leave pings unanswered"
            " before the step is failed as lost.",
        ),
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def watched_celery_executor(init_context: dg.InitExecutorContext) -> WatchedCeleryExecutor:
    """dagster-celery's `celery_executor`, whose runs fail a step whose worker stopped answering."""
    base = celery_executor.executor_creation_fn(init_context)  # type: ignore[misc]
    assert isinstance(base, CeleryExecutor), base
    lost_after = init_context.executor_config[LOST_AFTER_FIELD]
    assert isinstance(lost_after, int), lost_after
    return WatchedCeleryExecutor(base, lost_after)
