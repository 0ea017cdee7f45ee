"""The one build step between a dispatch call and Celery.

Every way of sending a job comes through :func:`build_envelope`: it validates
the payload, checks and translates every option and captures the session,
and returns an immutable :class:`Envelope`. Nothing here touches the broker
or Redis, so whatever it refuses was never published and locked nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from typedqueue import _wire as wire
from typedqueue._delay import parse_delay
from typedqueue._errors import (
    DispatchError,
    InvalidOptionError,
    InvalidPayloadError,
    UnknownQueueError,
    shown,
)
from typedqueue._job import Job
from typedqueue._locks import lock_key
from typedqueue._options import (
    check_dedupe_key,
    check_max_attempts,
    check_meta,
    check_option_names,
    to_json,
)


@dataclass(frozen=True)
class Lock:
    """The dedupe lock a job takes before it is published."""

    key: str
    token: str
    ttl_ms: int


@dataclass(frozen=True)
class Envelope:
    """Everything needed to publish one job, checked and translated."""

    job_id: str
    name: str
    queue: str
    fields: dict[str, Any]
    headers: dict[str, Any]
    delay_ms: int
    lock: Lock | None


def build_envelope(
    job: Job[Any], payload: object, options: Mapping[str, Any]
) -> Envelope:
    """Validate ``payload`` and ``options`` for ``job`` into an envelope."""
    runtime = job.runtime
    check_option_names(options)
    fields = job.fields_of(payload)

    queue = resolve_queue(options.get("queue"), job, runtime.queues)
    delay_ms = parse_delay(options.get("delay", 0))
    max_attempts = check_max_attempts(options.get("max_attempts", job.max_attempts))
    job_id = str(uuid.uuid4())

    headers: dict[str, Any] = {
        wire.VERSION: wire.PROTOCOL_VERSION,
        wire.MAX_ATTEMPTS: max_attempts,
        wire.SCHEMA: job.fingerprint,
    }
    meta = check_meta(options["meta"]) if "meta" in options else {}
    if meta:
        headers[wire.META] = meta
    session = _session_to_send(options, runtime.capture_session)
    if session is not None:
        try:
            binding = wire.bind(job.name, job_id, fields, meta, max_attempts)
        except ValueError as exc:
            # An int of over 4,300 digits, say: valid to pydantic, unsendable.
            raise InvalidPayloadError(
                f"payload of job {job.name!r} cannot be sent as JSON: {exc}"
            ) from exc
        headers.update(wire.encode_session(session, binding, runtime.session_secret))

    lock = None
    if "dedupe_key" in options:
        dedupe_key = check_dedupe_key(options["dedupe_key"])
        # The lock must outlive the delay, every backoff wait and the runs
        # themselves, or a duplicate could slip in while the job still waits.
        wait_s = job.backoff.total_ceiling_s(max_attempts) + job.dedupe_ttl_s
        lock = Lock(
            key=lock_key(job.name, dedupe_key),
            token=lock_token(job_id, queue),
            ttl_ms=delay_ms + int(wait_s * 1000),
        )
        headers[wire.LOCK] = {"key": lock.key, "token": lock.token}

    return Envelope(
        job_id=job_id,
        name=job.name,
        queue=queue,
        fields=fields,
        headers=headers,
        delay_ms=delay_ms,
        lock=lock,
    )


def build_envelopes(
    job: Job[Any],
    payloads: Sequence[object],
    options: Mapping[str, Any],
    dedupe_keys: Sequence[str | None] | None,
) -> list[Envelope]:
    """Envelopes for many payloads; one ValidationError names every bad one."""
    if "dedupe_key" in options:
        raise InvalidOptionError(
            "dispatch_many() takes dedupe_keys=[...], one key or None per "
            "payload, not dedupe_key="
        )
    keys = [None] * len(payloads) if dedupe_keys is None else list(dedupe_keys)
    if len(keys) != len(payloads):
        raise InvalidOptionError(
            f"dedupe_keys has {len(keys)} for {len(payloads)} payloads; "
            "give one key, or None, per payload"
        )

    envelopes: list[Envelope] = []
    failures: list[tuple[int, ValidationError]] = []
    for index, (payload, key) in enumerate(zip(payloads, keys, strict=True)):
        item_options = options if key is None else {**options, "dedupe_key": key}
        try:
            envelopes.append(build_envelope(job, payload, item_options))
        except ValidationError as exc:
            failures.append((index, exc))
        except InvalidOptionError as exc:
            if key is None:
                raise
            raise type(exc)(f"dedupe_keys[{index}]: {exc}") from None
    if failures:
        raise _merged(job, failures)
    return envelopes


def _merged(job: Job[Any], failures: list[tuple[int, ValidationError]]) -> Exception:
    """One ValidationError whose locations start with each payload's index."""
    details: list[InitErrorDetails] = []
    for index, exc in failures:
        for error in exc.errors():
            detail = InitErrorDetails(
                type=error["type"], loc=(index, *error["loc"]), input=error["input"]
            )
            if "ctx" in error:
                detail["ctx"] = error["ctx"]
            details.append(detail)
    try:
        return ValidationError.from_exception_data(f"{job.name} payloads", details)
    except (KeyError, TypeError, ValueError):
        # An error type pydantic cannot rebuild, from a custom validator.
        return InvalidPayloadError(
            f"payloads {', '.join(str(index) for index, _ in failures)} of job "
            f"{job.name!r} are invalid: "
            + "; ".join(f"[{index}] {exc}" for index, exc in failures)
        )


def resolve_queue(queue: object, job: Job[Any], queues: Sequence[str]) -> str:
    """The queue a dispatch goes to: asked for, else the job's, else the first.

    ``queue=None`` asks for that default, as leaving the option out does.
    """
    if queue is None:
        queue = job.queue or queues[0]
    if queue not in queues:
        declared = ", ".join(repr(name) for name in queues)
        raise UnknownQueueError(
            f"unknown queue {shown(queue)} for job {job.name!r}: "
            f"use one of the declared queues {declared}"
        )
    assert isinstance(queue, str)
    return queue


def lock_token(job_id: str, queue: str) -> str:
    """The value a dedupe lock holds: the holder's job id and queue."""
    return json.dumps({"job_id": job_id, "queue": queue}, separators=(",", ":"))


def parse_lock_token(token: str) -> tuple[str, str]:
    """Return the job id and queue a lock token names."""
    try:
        holder = json.loads(token)
        return str(holder["job_id"]), str(holder["queue"])
    except (ValueError, TypeError, KeyError):
        raise DispatchError(
            f"the dedupe lock holds {shown(token)}, which typedqueue did not write; "
            "delete that key or use another dedupe_key"
        ) from None


def _session_to_send(
    options: Mapping[str, Any], capture_session: Callable[[], Any]
) -> Any:
    if "session" not in options:
        session = capture_session()
    elif options["session"] is False:
        return None
    else:
        session = options["session"]
    return to_json(session, "session")
