"""The app the performance benchmark's workers run.

The same trivial handler twice: once as a typedqueue job, once as a plain
Celery task, each counting its runs in Redis and, when asked, noting when it
started.
"""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Literal

import redis
from pydantic import BaseModel

from typedqueue import JobContext, QueueRuntime

runtime = QueueRuntime[Literal["perf"]](queues=("perf",))
app = runtime.celery


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["TYPEDQUEUE_REDIS_URL"])


def _work(kind: str, mark: str | None) -> None:
    if mark is not None:
        _redis().rpush(f"started:{mark}", time.time())
    _redis().incr(f"done:{kind}")


class Email(BaseModel):
    email: str
    subject: str
    body: str
    mark: str | None = None


@runtime.job("perf_typed")
def perf_typed(payload: Email, ctx: JobContext) -> None:
    _work("typed", payload.mark)


@app.task(name="perf_plain")
def perf_plain(email: str, subject: str, body: str, mark: str | None = None) -> None:
    _work("plain", mark)
