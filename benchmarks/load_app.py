"""The app the load test's workers run: `celery -A benchmarks.load_app worker`."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

import redis
from pydantic import BaseModel

from typedqueue import JobContext, QueueRuntime

runtime = QueueRuntime[Literal["load"]](queues=("load",))
app = runtime.celery


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["TYPEDQUEUE_REDIS_URL"])


class Work(BaseModel):
    n: int


@runtime.job("load_work")
def load_work(payload: Work, ctx: JobContext) -> None:
    # Every start is counted, and every job id kept: a job run twice shows
    # as more starts than ids.
    pipe = _redis().pipeline(transaction=False)
    pipe.incr("load:starts")
    pipe.sadd("load:ids", ctx.job_id)
    pipe.execute()
