"""The app the integration tests' workers run: `celery -A tests.integration.app`.

Every handler records what it saw into Redis, pickled, under its payload's
tag, so a test in another process can assert on the real objects.
"""

from __future__ import annotations

import os
import pickle
import time
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Literal
from uuid import UUID

import redis
from pydantic import BaseModel
from typing_extensions import TypedDict

from typedqueue import Backoff, JobContext, QueueRuntime, get_session

Queue = Literal["low", "high", "crash"]

runtime = QueueRuntime[Queue](queues=("low", "high", "crash"))
app = runtime.celery

# Short waits keep the retry tests quick; jitter off makes them predictable.
FAST = Backoff(first_s=0.05, max_s=0.2, jitter=False)
GATE_TIMEOUT_S = 30


@cache
def recorder() -> redis.Redis:
    # Runs are recorded on the session's server even by a worker whose
    # broker is another one.
    return redis.Redis.from_url(os.environ["TQ_TEST_RECORD_URL"])


def record(tag: str, payload: object, ctx: JobContext) -> None:
    seen = {
        "payload": payload,
        "ctx": ctx,
        "session": get_session(),
        "started": time.time(),
        "pid": os.getpid(),
    }
    recorder().rpush(f"runs:{tag}", pickle.dumps(seen))


class Probe(BaseModel):
    tag: str
    fail_until: int = 0
    """Raise ValueError("boom") on every attempt up to this one."""
    gate: bool = False
    """Wait, after recording, until the test pushes to gate:<tag>."""
    scribble: bool = False
    """Write into ctx.meta and the session, as a careless handler might."""


def run_probe(payload: Probe, ctx: JobContext) -> None:
    record(payload.tag, payload, ctx)
    if payload.scribble:
        ctx.meta["touched"] = ctx.attempt  # type: ignore[index]
        get_session()["touched"] = ctx.attempt
    if payload.gate:
        recorder().blpop([f"gate:{payload.tag}"], timeout=GATE_TIMEOUT_S)
    if ctx.attempt <= payload.fail_until:
        raise ValueError("boom")


probe = runtime.job("probe", backoff=FAST, dedupe_ttl_s=60)(run_probe)
probe_short_lock = runtime.job("probe_short_lock", dedupe_ttl_s=2)(run_probe)
probe_slow_retry = runtime.job(
    "probe_slow_retry",
    backoff=Backoff(first_s=0.5, max_s=1.0, jitter=False),
    dedupe_ttl_s=60,
)(run_probe)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Line(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    tag: str
    id: UUID
    at: datetime
    price: Decimal
    tags: list[str] | None = None
    color: Color = Color.RED
    lines: list[Line] = []


@runtime.job("order")
def order(payload: Order, ctx: JobContext) -> None:
    record(payload.tag, payload, ctx)


class Mail(TypedDict):
    tag: str
    email: str
    amount: int


@runtime.job("mail", queue="low")
def mail(payload: Mail, ctx: JobContext) -> None:
    record(payload["tag"], payload, ctx)


class Signup(BaseModel):
    tag: str
    email: str
    plan: str = "free"


@runtime.job("accounts.tasks.welcome")
def welcome(payload: Signup, ctx: JobContext) -> None:
    """A job under a dotted name, as a migrated `@app.task` has by default."""
    record(payload.tag, payload, ctx)
