"""The client: typed dispatch of jobs to a runtime's queues."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import redis
from kombu.exceptions import KombuError
from pydantic import BaseModel
from typing_extensions import Unpack

from typedqueue._envelope import Envelope, build_envelope, parse_lock_token
from typedqueue._errors import DispatchError
from typedqueue._job import Job
from typedqueue._options import DispatchOptions, Q

if TYPE_CHECKING:
    from typedqueue._runtime import QueueRuntime

M = TypeVar("M", bound=BaseModel)
Q_co = TypeVar("Q_co", bound=str, covariant=True)
P = TypeVar("P")

logger = logging.getLogger(__name__)

# What a broker or Redis raises when it cannot be reached or refuses a write.
_TRANSPORT_ERRORS = (KombuError, redis.RedisError, OSError)


@dataclass(frozen=True)
class DispatchResult(Generic[Q_co]):
    """What :meth:`Client.dispatch` did.

    With ``deduplicated`` set, nothing was published: ``job_id`` and ``queue``
    are those of the pending or running job that holds the dedupe key.
    """

    job_id: str
    name: str
    queue: Q_co
    deduplicated: bool = False


class Client(Generic[Q]):
    """Dispatches jobs through the runtime that made it."""

    def __init__(self, runtime: QueueRuntime[Q]) -> None:
        self.runtime = runtime

    @overload
    def dispatch(
        self, job: Job[P], payload: P, /, **options: Unpack[DispatchOptions[Q]]
    ) -> DispatchResult[Q]: ...

    @overload
    def dispatch(
        self,
        job: Job[M],
        payload: M | Mapping[str, Any],
        /,
        **options: Unpack[DispatchOptions[Q]],
    ) -> DispatchResult[Q]: ...

    def dispatch(
        self, job: Job[Any], payload: object, /, **options: Any
    ) -> DispatchResult[Q]:
        """Validate ``payload``, then publish ``job`` unless a duplicate is pending.

        Raises pydantic's ``ValidationError`` for a payload that does not
        match the job's schema, :class:`InvalidOptionError` for a bad option
        and :class:`DispatchError` when the broker or Redis cannot be reached.
        In every one of those cases nothing was published and no dedupe lock
        is left behind.
        """
        self.runtime.check_owns(job)
        envelope = build_envelope(job, payload, options)

        if envelope.lock is not None:
            holder = self._take_lock(envelope)
            if holder is not None:
                return holder

        try:
            self.runtime.publisher.publish(envelope)
        except BaseException as exc:
            # Whatever failed, the lock must not outlive a job never sent.
            if envelope.lock is not None:
                self._release_lock(envelope)
            if not isinstance(exc, Exception):
                raise
            fix = (
                "check that the broker is up"
                if isinstance(exc, _TRANSPORT_ERRORS)
                else "see the cause above"
            )
            raise DispatchError(
                f"job {envelope.name}[{envelope.job_id}] was not published to "
                f"queue {envelope.queue!r}: {exc!r}; {fix}"
            ) from exc

        logger.debug(
            "Dispatched job %s[%s] to queue %r (delay_ms=%d)",
            envelope.name,
            envelope.job_id,
            envelope.queue,
            envelope.delay_ms,
            extra=_fields(envelope),
        )
        # The envelope's queue was checked against the declared ones.
        return DispatchResult(envelope.job_id, envelope.name, cast("Q", envelope.queue))

    def _release_lock(self, envelope: Envelope) -> None:
        assert envelope.lock is not None
        try:
            self.runtime.locks.release(envelope.lock.key, envelope.lock.token)
        except _TRANSPORT_ERRORS as exc:
            logger.warning(
                "Could not release the dedupe lock of unpublished job %s[%s]: "
                "%s; it expires by its TTL",
                envelope.name,
                envelope.job_id,
                exc,
                extra=_fields(envelope),
            )

    def _take_lock(self, envelope: Envelope) -> DispatchResult[Q] | None:
        """Take the envelope's lock; return the holder's result if it is taken."""
        assert envelope.lock is not None
        lock = envelope.lock
        try:
            token = self.runtime.locks.acquire(lock.key, lock.token, lock.ttl_ms)
        except _TRANSPORT_ERRORS as exc:
            raise DispatchError(
                f"job {envelope.name}[{envelope.job_id}] was not published: "
                f"its dedupe lock could not be taken: {exc}; check that Redis is up"
            ) from exc
        if token is None:
            return None

        job_id, queue = parse_lock_token(token)
        logger.info(
            "Deduplicated job %s: %s[%s] on queue %r holds its dedupe key",
            envelope.name,
            envelope.name,
            job_id,
            queue,
            extra={"job_id": job_id, "job_name": envelope.name, "queue": queue},
        )
        return DispatchResult(
            job_id, envelope.name, cast("Q", queue), deduplicated=True
        )


def _fields(envelope: Envelope) -> dict[str, Any]:
    return {
        "job_id": envelope.job_id,
        "job_name": envelope.name,
        "queue": envelope.queue,
        "delay_ms": envelope.delay_ms,
    }
