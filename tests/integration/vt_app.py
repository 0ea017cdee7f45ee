"""A second test app whose broker hands unacknowledged messages out again fast.

A visibility timeout of 2 s, checked every second, makes the redelivery that
the default hour hides happen within a test.
"""

from __future__ import annotations

from typing import Literal

from tests.integration.app import Probe, record
from typedqueue import JobContext, QueueRuntime

runtime = QueueRuntime[Literal["vt"]](queues=("vt",))
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
