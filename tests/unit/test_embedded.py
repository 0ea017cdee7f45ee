"""The embedded runtime: a real Celery worker in this process, no server.

One runtime serves every test here: Celery's in-memory transport keeps its
queues per process, so two embedded runtimes would share them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from typedqueue import (
    Backoff,
    Job,
    JobContext,
    QueueRuntime,
    get_session,
    session_scope,
)
from typedqueue._runtime import BROKER_URL_ENV, REDIS_URL_ENV, RESULT_BACKEND_ENV

Queue = Literal["default", "low"]


class Ping(BaseModel):
    n: int
    fail_until: int = 0


seen: list[tuple[int, JobContext, object]] = []
seen_lock = threading.Lock()


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[QueueRuntime[Queue], Job[Ping]]]:
    """An embedded runtime and its one job, whose handler appends to ``seen``."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (BROKER_URL_ENV, REDIS_URL_ENV, RESULT_BACKEND_ENV):
            patch.delenv(name, raising=False)
        runtime = QueueRuntime[Queue](queues=("default", "low"))

    @runtime.job("ping", backoff=Backoff(first_s=0.01, jitter=False))
    def ping(payload: Ping, ctx: JobContext) -> None:
        with seen_lock:
            seen.append((payload.n, ctx, get_session()))
        if ctx.attempt <= payload.fail_until:
            raise RuntimeError("not yet")

    yield runtime, ping
    runtime.close()


@pytest.fixture(autouse=True)
def _fresh() -> None:
    seen.clear()


def test_jobs_run_in_process_with_every_option(
    embedded: tuple[QueueRuntime[Queue], Job[Ping]],
) -> None:
    """Delay, queue, meta, session and retries work without any server."""
    runtime, job = embedded
    client = runtime.create_client()
    with session_scope({"user": 7}):
        result = client.dispatch(
            job,
            {"n": 1, "fail_until": 1},
            max_attempts=2,
            queue="low",
            delay="50ms",
            meta={"m": 1},
        )

    assert runtime.wait_idle(10)
    assert [(n, ctx.attempt, session) for n, ctx, session in seen] == [
        (1, 1, {"user": 7}),
        (1, 2, {"user": 7}),
    ]
    assert {ctx.job_id for _, ctx, _ in seen} == {result.job_id}
    assert {ctx.queue for _, ctx, _ in seen} == {"low"}
    assert seen[0][1].meta == {"m": 1}


def test_dedupe_in_process(embedded: tuple[QueueRuntime[Queue], Job[Ping]]) -> None:
    """A second dispatch with the same key is deduplicated until the first ends."""
    runtime, job = embedded
    client = runtime.create_client()

    first = client.dispatch(job, {"n": 2}, delay="200ms", dedupe_key="k")
    second = client.dispatch(job, {"n": 3}, dedupe_key="k")
    assert runtime.wait_idle(10)
    third = client.dispatch(job, {"n": 4}, dedupe_key="k")
    assert runtime.wait_idle(10)

    assert (second.deduplicated, second.job_id) == (True, first.job_id)
    assert not third.deduplicated
    assert [n for n, _, _ in seen] == [2, 4]
