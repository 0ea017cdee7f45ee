"""A second test app whose broker hands unacknowledged messages out again fast.

A visibility timeout of 2 s, checked every second, makes the redelivery that
the default hour hides happen within a test; a lease of 1 s lets a killed
worker's attempt run again soon after.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel

from tests.integration.app import Probe, record, recorder
from typedqueue import JobContext, QueueRuntime

runtime = QueueRuntime[Literal["vt"]](queues=("vt",), lease_s=1)
app = runtime.celery
app.conf.broker_transport_options = {
    "visibility_timeout": 2,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}


@runtime.job("vt_probe")
def vt_probe(payload: Probe, ctx: JobContext) -> None:
    record(payload.tag, payload, ctx)


@app.task(name="plain_probe")
def plain_probe(tag: str) -> None:
    """A plain Celery task, to show what the same delay does without typedqueue."""
    record(tag, None, None)  # type: ignore[arg-type]


class Slow(BaseModel):
    tag: str
    seconds: float


@runtime.job("vt_slow")
def vt_slow(payload: Slow, ctx: JobContext) -> None:
    """Runs longer than the visibility timeout."""
    record(payload.tag, payload, ctx)
    time.sleep(payload.seconds)


@runtime.job("vt_crash_once")
def vt_crash_once(payload: Probe, ctx: JobContext) -> None:
    """Hangs on its first start, for the test to kill its worker; then succeeds."""
    record(payload.tag, payload, ctx)
    if recorder().incr(f"starts:{payload.tag}") == 1:
        time.sleep(60)


@runtime.job("vt_slow_retry", max_attempts=2)
def vt_slow_retry(payload: Slow, ctx: JobContext) -> None:
    """Fails at once on attempt 1; attempt 2 outlives the visibility timeout."""
    record(payload.tag, payload, ctx)
    if ctx.attempt == 1:
        raise ValueError("first attempt fails")
    time.sleep(payload.seconds)
