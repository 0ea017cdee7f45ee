"""The worker side: the Celery task that runs a typedqueue job.

Each job is registered as a plain Celery task under the job's name, so any
``celery worker`` that imports the runtime's module runs it. For every
message the task checks typedqueue's headers, claims the attempt, validates
the payload into the schema's type, restores the session around the handler,
and decides between a retry and the final failure itself: a failed job ends
with the handler's own exception.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from typedqueue import _wire as wire
from typedqueue._context import JobContext
from typedqueue._errors import shown
from typedqueue._guard import Busy, Claim
from typedqueue._job import Job
from typedqueue._options import is_whole
from typedqueue._redelivery import Delivery, hop, own_headers, requeue_copy
from typedqueue._session import session_scope

if TYPE_CHECKING:
    from typedqueue._runtime import QueueRuntime

logger = logging.getLogger(__name__)


_warned_fingerprints: set[tuple[str, str]] = set()


def run_job(
    task: Task[Any, Any], job: Job[Any], args: tuple[Any, ...], fields: dict[str, Any]
) -> Any:
    """Run one attempt of ``job`` for the message ``task`` is executing."""
    request = task.request
    runtime = job.runtime
    headers: dict[str, Any] = request.headers or {}
    job_id = str(request.id)
    queue = _queue_of(request, job)
    log = {"job_id": job_id, "job_name": job.name, "queue": queue}

    try:
        received = wire.read_headers(
            headers,
            job_name=job.name,
            job_id=job_id,
            fields=fields,
            default_max_attempts=job.max_attempts,
            secret=runtime.session_secret,
        )
        retries = request.retries
        if not is_whole(retries) or retries < 0:
            raise wire.PoisonMessage(f"header retries is {shown(retries)}")
    except wire.PoisonMessage as exc:
        _reject(job, job_id, str(exc), log, lock=wire.lock_of(headers))

    attempt = retries + 1
    delivery = Delivery(job, job_id, queue, attempt, received, fields, log)
    if received.due_ms is not None and received.due_ms > wire.now_ms():
        hop(delivery, received.due_ms)

    claim = _claim(runtime, job_id, attempt, received, log)
    if isinstance(claim, Busy):
        requeue_copy(delivery, claim)

    try:
        payload = _validate(job, received, args, fields, log)
    except wire.PoisonMessage as exc:
        _finish(runtime, claim)
        _reject(job, job_id, str(exc), log, lock=received.lock)

    # Copies: whatever the handler does to them, the next attempt gets the
    # values that were dispatched.
    ctx = JobContext(
        job_id=job_id,
        name=job.name,
        queue=queue,
        attempt=attempt,
        max_attempts=received.max_attempts,
        meta=copy.deepcopy(received.meta),
        session=copy.deepcopy(received.session),
    )
    try:
        with session_scope(ctx.session):
            result = job.handler(payload, ctx)
    except Exception as exc:
        if attempt < received.max_attempts:
            _retry(task, job, ctx, exc, claim, received, log)
        logger.warning(
            "Job %s[%s] failed on its last attempt (%d of %d): %r",
            job.name,
            job_id,
            attempt,
            received.max_attempts,
            exc,
            extra={**log, "attempt": attempt},
        )
        _finish(runtime, claim)
        _release(runtime, received.lock, log)
        raise
    except BaseException:
        # The worker is going down (its shutdown raises SystemExit in the
        # handler's thread): leave the attempt as a killed worker would, its
        # claim to lapse and its message to be delivered again.
        _abandon(runtime, claim)
        raise

    _finish(runtime, claim)
    _release(runtime, received.lock, log)
    return to_jsonable_python(result)


def _validate(
    job: Job[Any],
    received: wire.Received,
    args: tuple[Any, ...],
    fields: dict[str, Any],
    log: dict[str, str],
) -> Any:
    if args:
        raise wire.PoisonMessage(
            f"it has positional arguments {shown(args)}; typedqueue sends the "
            "payload's fields as keyword arguments"
        )
    if received.schema is not None and received.schema != job.fingerprint:
        _warn_fingerprint(job, received.schema, log)
    try:
        return job.validate(fields)
    except ValidationError as exc:
        # Retrying cannot fix a message that does not fit the schema.
        errors = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'payload'}: {error['msg']}"
            for error in exc.errors()
        )
        raise wire.PoisonMessage(
            f"its payload does not match {job.schema.__name__} ({errors})"
        ) from None


def _warn_fingerprint(job: Job[Any], theirs: str, log: dict[str, str]) -> None:
    if (job.name, theirs) in _warned_fingerprints:
        return
    _warned_fingerprints.add((job.name, theirs))
    logger.warning(
        "Job %s[%s] was sent with another version of %s (schema %s, this "
        "worker has %s); validating it against this worker's",
        job.name,
        log["job_id"],
        job.schema.__name__,
        theirs,
        job.fingerprint,
        extra=log,
    )


def _reject(
    job: Job[Any],
    job_id: str,
    reason: str,
    log: dict[str, str],
    lock: tuple[str, str] | None,
) -> NoReturn:
    """Fail the job for good without running it; raises Celery's ``Reject``."""
    logger.error("Rejected job %s[%s]: %s", job.name, job_id, reason, extra=log)
    _release(job.runtime, lock, log)
    # Not requeued: Celery records the job as failed and drops the message.
    raise Reject(f"rejected: {reason}", requeue=False)


def _retry(
    task: Task[Any, Any],
    job: Job[Any],
    ctx: JobContext,
    exc: Exception,
    claim: Claim | None,
    received: wire.Received,
    log: dict[str, str],
) -> NoReturn:
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
        extra={**log, "attempt": ctx.attempt},
    )
    options: dict[str, Any] = {"countdown": wait_s}
    hop_ms = job.runtime.publisher.hop_ms
    if wait_s * 1000 > hop_ms:
        # A wait past the visibility timeout travels in hops, as delays do.
        due_ms = wire.now_ms() + int(wait_s * 1000)
        options = {
            "countdown": hop_ms / 1000,
            "headers": {**own_headers(received.headers), wire.DUE: due_ms},
        }
    try:
        # The task's max_retries is None: typedqueue counts attempts itself,
        # and Celery must neither stop early nor replace the handler's error.
        raise task.retry(exc=exc, **options)
    except Retry:
        _finish(job.runtime, claim)
        raise
    except Exception as error:
        # The next attempt could not be published. Rather than end the job
        # over a broker hiccup, put this message back: the attempt runs
        # again once its claim lapses.
        logger.error(
            "Job %s[%s] could not publish attempt %d (%r); its message goes "
            "back to the queue",
            ctx.name,
            ctx.job_id,
            ctx.attempt + 1,
            error,
            extra=log,
        )
        _abandon(job.runtime, claim)
        raise Reject(error, requeue=True) from error


def _claim(
    runtime: QueueRuntime[Any],
    job_id: str,
    attempt: int,
    received: wire.Received,
    log: dict[str, str],
) -> Claim | Busy | None:
    """Claim the attempt; ``Ignore`` a copy of one that has already run."""
    guard = runtime.guard
    if guard is None:
        return None
    try:
        claim = guard.begin(job_id, attempt, received.sent_ms, received.suspect)
    except redis.RedisError as exc:
        if received.suspect:
            # A possible copy must not run unchecked: look again later.
            return Busy(wait_ms=guard.lease_ms)
        # Without Redis the attempt cannot be claimed; running it keeps the
        # at-least-once promise, at the risk of a second run.
        logger.warning(
            "Could not claim attempt %d of job %s: %s; running it unclaimed",
            attempt,
            job_id,
            exc,
            extra=log,
        )
        return None
    if claim is None:
        logger.info(
            "Dropped a copy of attempt %d of job %s, which has already run",
            attempt,
            job_id,
            extra=log,
        )
        raise Ignore()
    return claim


def _abandon(runtime: QueueRuntime[Any], claim: Claim | None) -> None:
    if runtime.guard is not None and claim is not None:
        runtime.guard.abandon(claim)


def _finish(runtime: QueueRuntime[Any], claim: Claim | None) -> None:
    if runtime.guard is None or claim is None:
        return
    try:
        runtime.guard.finish(claim)
    except redis.RedisError as exc:
        logger.warning("Could not mark %s done: %s", claim.key, exc)


def _release(
    runtime: QueueRuntime[Any], lock: tuple[str, str] | None, log: dict[str, str]
) -> None:
    if lock is None:
        return
    key, token = lock
    try:
        released = runtime.locks.release(key, token)
    except redis.RedisError as exc:
        # The job's outcome stands; the lock lapses with its TTL.
        logger.warning(
            "Could not release the dedupe lock of job %s: %s; it expires by its TTL",
            log["job_id"],
            exc,
            extra=log,
        )
        return
    logger.debug(
        "Job %s %s its dedupe lock",
        log["job_id"],
        "released" if released else "no longer held",
        extra=log,
    )


def _queue_of(request: Any, job: Job[Any]) -> str:
    delivery_info = request.delivery_info or {}
    queue = delivery_info.get("routing_key")
    if isinstance(queue, str) and queue:
        return queue
    return job.queue or job.runtime.queues[0]
