"""The client: typed dispatch of jobs to a runtime's queues."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

import redis
from kombu.exceptions import KombuError
from pydantic import BaseModel
from typing_extensions import Unpack

from typedqueue._envelope import (
    Envelope,
    build_envelope,
    build_envelopes,
    parse_lock_token,
)
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
        match the job's schema, :class:`InvalidPayloadError` for one with no
        JSON form, :class:`InvalidOptionError` for a bad option: then nothing
        was published and no lock taken. :class:`DispatchError` means the
        broker or Redis failed: nothing was published and no lock is left,
        unless Redis timed out, when the outcome is unknown and the error
        says so.
        """
        self.runtime.check_owns(job)
        envelope = build_envelope(job, payload, options)

        [holder] = self._take_locks([envelope])
        if holder is not None:
            return self._result(envelope, holder)

        try:
            self.runtime.publisher.publish(envelope)
        except BaseException as exc:
            # Whatever failed, no lock may outlive a job that was never sent.
            self._release_locks([envelope])
            if not isinstance(exc, Exception):
                raise
            raise DispatchError(
                f"job {envelope.name}[{envelope.job_id}] failed to publish to "
                f"queue {envelope.queue!r}: {exc!r}; {_advice(exc)}"
            ) from exc

        logger.debug(
            "Dispatched job %s[%s] to queue %r (delay_ms=%d)",
            envelope.name,
            envelope.job_id,
            envelope.queue,
            envelope.delay_ms,
            extra={
                "job_id": envelope.job_id,
                "job_name": envelope.name,
                "queue": envelope.queue,
                "delay_ms": envelope.delay_ms,
            },
        )
        return self._result(envelope, None)

    @overload
    def dispatch_many(
        self,
        job: Job[P],
        payloads: Iterable[P],
        /,
        *,
        dedupe_keys: Sequence[str | None] | None = None,
        **options: Unpack[DispatchOptions[Q]],
    ) -> list[DispatchResult[Q]]: ...

    @overload
    def dispatch_many(
        self,
        job: Job[M],
        payloads: Iterable[M | Mapping[str, Any]],
        /,
        *,
        dedupe_keys: Sequence[str | None] | None = None,
        **options: Unpack[DispatchOptions[Q]],
    ) -> list[DispatchResult[Q]]: ...

    def dispatch_many(
        self,
        job: Job[Any],
        payloads: Iterable[Any],
        /,
        *,
        dedupe_keys: Sequence[str | None] | None = None,
        **options: Any,
    ) -> list[DispatchResult[Q]]:
        """Dispatch many payloads of one job, with the same options, in bulk.

        Every payload is validated before anything is published: one
        ``ValidationError`` reports every bad payload, its location starting
        with the payload's index. ``dedupe_keys`` gives each payload its own
        key, or ``None``. Locks are taken in one Redis round trip and the
        messages published over one connection in one pipeline. Results come
        back in the order of ``payloads``. Raises as :meth:`dispatch` does.
        """
        self.runtime.check_owns(job)
        envelopes = build_envelopes(job, list(payloads), options, dedupe_keys)

        holders = self._take_locks(envelopes)
        fresh = [e for e, holder in zip(envelopes, holders, strict=True) if not holder]
        try:
            self.runtime.publisher.publish_many(fresh)
        except BaseException as exc:
            self._release_locks(fresh)
            if not isinstance(exc, Exception):
                raise
            raise DispatchError(
                f"{len(fresh)} jobs {job.name} failed to publish: {exc!r}; "
                f"{_advice(exc)}"
            ) from exc

        logger.debug(
            "Dispatched %d jobs %s; %d more were deduplicated",
            len(fresh),
            job.name,
            len(envelopes) - len(fresh),
            extra={"job_name": job.name},
        )
        return [
            self._result(envelope, holder)
            for envelope, holder in zip(envelopes, holders, strict=True)
        ]

    def _take_locks(self, envelopes: Sequence[Envelope]) -> list[str | None]:
        """Take the envelopes' locks; the holder's token where one was taken."""
        locks = [e.lock for e in envelopes]
        wanted = [(lock.key, lock.token, lock.ttl_ms) for lock in locks if lock]
        if not wanted:
            return [None] * len(envelopes)
        try:
            if len(wanted) == 1:
                taken = iter([self.runtime.locks.acquire(*wanted[0])])
            else:
                taken = iter(self.runtime.locks.acquire_many(wanted))
        except _TRANSPORT_ERRORS as exc:
            raise DispatchError(
                f"nothing was published: the dedupe locks could not be taken: "
                f"{exc!r}; {_advice(exc)}"
            ) from exc
        return [next(taken) if lock else None for lock in locks]

    def _release_locks(self, envelopes: Sequence[Envelope]) -> None:
        held = [(e.lock.key, e.lock.token) for e in envelopes if e.lock]
        if not held:
            return
        try:
            self.runtime.locks.release_many(held)
        except _TRANSPORT_ERRORS as exc:
            logger.warning(
                "Could not release %d dedupe locks of unpublished jobs: %s; "
                "they expire by their TTL",
                len(held),
                exc,
            )

    def _result(self, envelope: Envelope, holder: str | None) -> DispatchResult[Q]:
        # Queues were checked against the declared ones when the envelope
        # was built, and the holder's when its own was.
        if holder is None:
            queue = cast("Q", envelope.queue)
            return DispatchResult(envelope.job_id, envelope.name, queue)

        job_id, queue_name = parse_lock_token(holder)
        logger.info(
            "Deduplicated job %s: %s[%s] on queue %r holds its dedupe key",
            envelope.name,
            envelope.name,
            job_id,
            queue_name,
            extra={"job_id": job_id, "job_name": envelope.name, "queue": queue_name},
        )
        queue = cast("Q", queue_name)
        return DispatchResult(job_id, envelope.name, queue, deduplicated=True)


def _advice(exc: BaseException) -> str:
    """What a failed publish means for the caller."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError | redis.TimeoutError):
            return (
                "Redis did not answer in time, so the outcome is unknown: what "
                "was sent may still take effect when it recovers"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, _TRANSPORT_ERRORS):
        return "nothing was published; check that the broker and Redis are up"
    return "nothing was published; see the cause above"
