"""Sending a received message on: the next hop of a long delay, or a copy of
an attempt that runs elsewhere back to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from celery.exceptions import Ignore, Reject

from typedqueue import _wire as wire
from typedqueue._guard import Busy
from typedqueue._job import Job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One received message of a job, its headers checked."""

    job: Job[Any]
    job_id: str
    queue: str
    attempt: int
    received: wire.Received
    fields: dict[str, Any]
    log: dict[str, str]


def hop(delivery: Delivery, due_ms: int) -> NoReturn:
    """Publish the next hop of a long delay; raises Celery's ``Ignore``."""
    left_ms = due_ms - wire.now_ms()
    hop_ms = min(left_ms, delivery.job.runtime.publisher.hop_ms)
    # A hop of a copy is a copy too: both chains arrive when the job is due.
    _resend(delivery, hop_ms, copy=delivery.received.suspect)
    logger.debug(
        "Job %s[%s] is due in %d ms; published its next hop",
        delivery.job.name,
        delivery.job_id,
        left_ms,
        extra=delivery.log,
    )
    # This message is done without a state of its own; the job goes on in
    # the hop just published.
    raise Ignore()


def requeue_copy(delivery: Delivery, busy: Busy) -> NoReturn:
    """Send a redelivered copy back until its attempt ends; raises ``Ignore``."""
    # The copy stays in play in case the running attempt dies: it then runs
    # once the lease lapses instead of the job being lost.
    try:
        _resend(delivery, busy.wait_ms, copy=True)
    except Exception as exc:
        # Could not send it back: return the message to the queue instead.
        raise Reject(exc, requeue=True) from exc
    logger.info(
        "Job %s[%s] is already running elsewhere; checking again in %d ms",
        delivery.job.name,
        delivery.job_id,
        busy.wait_ms,
        extra=delivery.log,
    )
    raise Ignore()


def _resend(delivery: Delivery, delay_ms: int, copy: bool) -> None:
    """Publish this delivery's message again, as the same attempt."""
    own = own_headers(delivery.received.headers)
    if copy:
        own[wire.COPY] = 1
    delivery.job.runtime.publisher.send(
        delivery.job.name,
        delivery.job_id,
        delivery.queue,
        delivery.fields,
        own,
        delay_ms,
        retries=delivery.attempt - 1,
    )


def own_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """typedqueue's headers of a message, to carry onto the next one."""
    return {name: value for name, value in headers.items() if name.startswith("tq_")}
