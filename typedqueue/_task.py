"""The worker side: the Celery task that runs a typedqueue job.

Each job is registered as a plain Celery task under the job's name, so any
``celery worker`` that imports the runtime's module runs it. The task reads
typedqueue's headers, validates the payload into the schema's type, restores
the session around the handler, and decides between a retry and the final
failure itself: the handler's own exception is what a failed job ends with.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Retry
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from typedqueue._context import JobContext
from typedqueue._envelope import (
    DUE_HEADER,
    LOCK_HEADER,
    MAX_ATTEMPTS_HEADER,
    META_HEADER,
    SESSION_HEADER,
)
from typedqueue._job import Job
from typedqueue._session import session_scope

logger = logging.getLogger(__name__)


def run_job(
    task: Task[Any, Any],
    job: Job[Any],
    args: tuple[Any, ...],
    fields: dict[str, Any],
) -> Any:
    """Run one attempt of ``job`` for the message ``task`` is executing."""
    request = task.request
    headers: dict[str, Any] = request.headers or {}
    ctx = JobContext(
        job_id=str(request.id),
        name=job.name,
        queue=_queue_of(request, job),
        attempt=request.retries + 1,
        max_attempts=headers.get(MAX_ATTEMPTS_HEADER, job.max_attempts),
        meta=headers.get(META_HEADER) or {},
        session=headers.get(SESSION_HEADER),
    )
    log_fields = {"job_id": ctx.job_id, "job_name": ctx.name, "queue": ctx.queue}

    due_ms = headers.get(DUE_HEADER)
    if isinstance(due_ms, int) and due_ms > time.time() * 1000:
        _hop(job, ctx, headers, fields, due_ms)

    try:
        if args:
            raise TypeError(
                f"job {job.name} got positional arguments {args!r}; typedqueue "
                "sends the payload's fields as keyword arguments"
            )
        payload = job.validate(fields)
    except (TypeError, ValidationError) as exc:
        # Retrying cannot fix a message that does not fit the schema.
        logger.error(
            "Rejected job %s[%s]: its payload does not match %s: %s",
            ctx.name,
            ctx.job_id,
            job.schema.__name__,
            exc,
            extra=log_fields,
        )
        _release(job, headers, ctx)
        raise

    try:
        with session_scope(ctx.session):
            result = job.handler(payload, ctx)
    except Exception as exc:
        if ctx.attempt < ctx.max_attempts:
            _retry(task, job, ctx, exc, headers)
        logger.warning(
            "Job %s[%s] failed on its last attempt (%d of %d): %r",
            ctx.name,
            ctx.job_id,
            ctx.attempt,
            ctx.max_attempts,
            exc,
            extra={**log_fields, "attempt": ctx.attempt},
        )
        _release(job, headers, ctx)
        raise

    _release(job, headers, ctx)
    return to_jsonable_python(result)


def _retry(
    task: Task[Any, Any],
    job: Job[Any],
    ctx: JobContext,
    exc: Exception,
    headers: dict[str, Any],
) -> None:
    """Publish the next attempt; raises Celery's ``Retry`` once it is out."""
    wait_s = job.backoff.wait_s(ctx.attempt)
    logger.info(
        "Job %s[%s] failed on attempt %d of %d (%r); retrying in %.3f s",
        ctx.name,
        ctx.job_id,
        ctx.attempt,
        ctx.max_attempts,
        exc,
        wait_s,
        extra={
            "job_id": ctx.job_id,
            "job_name": ctx.name,
            "queue": ctx.queue,
            "attempt": ctx.attempt,
        },
    )
    try:
        # The task's max_retries is None: typedqueue counts attempts itself,
        # and Celery must neither stop early nor replace the handler's error.
        raise task.retry(exc=exc, countdown=wait_s)
    except Retry:
        raise
    except Exception:
        # The next attempt was never published, so this job ends here.
        _release(job, headers, ctx)
        raise


def _hop(
    job: Job[Any],
    ctx: JobContext,
    headers: dict[str, Any],
    fields: dict[str, Any],
    due_ms: int,
) -> None:
    """Publish the next hop of a long delay; raises Celery's ``Ignore``."""
    runtime = job.runtime
    left_ms = due_ms - int(time.time() * 1000)
    own = {name: value for name, value in headers.items() if name.startswith("tq_")}
    runtime.send(
        job.name, ctx.job_id, ctx.queue, fields, own, min(left_ms, runtime.hop_ms)
    )
    logger.debug(
        "Job %s[%s] is due in %d ms; published its next hop",
        ctx.name,
        ctx.job_id,
        left_ms,
        extra={"job_id": ctx.job_id, "job_name": ctx.name, "queue": ctx.queue},
    )
    # Ignore: this message is done, without a state of its own; the job
    # goes on in the hop just published.
    raise Ignore()


def _release(job: Job[Any], headers: dict[str, Any], ctx: JobContext) -> None:
    lock = headers.get(LOCK_HEADER)
    if not isinstance(lock, dict):
        return
    released = job.runtime.locks.release(str(lock.get("key")), str(lock.get("token")))
    logger.debug(
        "Job %s[%s] %s its dedupe lock",
        ctx.name,
        ctx.job_id,
        "released" if released else "no longer held",
        extra={"job_id": ctx.job_id, "job_name": ctx.name, "queue": ctx.queue},
    )


def _queue_of(request: Any, job: Job[Any]) -> str:
    delivery_info = request.delivery_info or {}
    queue = delivery_info.get("routing_key")
    if isinstance(queue, str) and queue:
        return queue
    return job.queue or job.runtime.queues[0]
