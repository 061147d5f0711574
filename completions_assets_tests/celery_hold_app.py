"""A Celery app whose one task holds its worker until the test releases it (a Redis list), for
the watch over lost workers (completions_assets_tests/test_celery_watch.py). The worker is started
with `celery -A completions_assets_tests.celery_hold_app worker`; broker and backend from the environment."""

import os

import redis
from celery import Celery

BROKER, BACKEND = os.environ.get("HOLD_BROKER", "memory://"), os.environ.get("HOLD_BACKEND", "cache+memory://")
app = Celery("hold", broker=BROKER, backend=BACKEND)
app.conf.task_track_started = True  # as deploy/celery.yaml sets it for the Dagster workers


@app.task(name="hold")
def hold(release_key: str, timeout_s: int) -> str:
    """Waits until `release_key` is pushed (bounded by `timeout_s`)."""
    client = redis.Redis.from_url(BROKER, socket_timeout=timeout_s + 10)
    released = client.blpop([release_key], timeout=timeout_s)
    assert released, f"{release_key} was not released within {timeout_s} s"
    return "released"
