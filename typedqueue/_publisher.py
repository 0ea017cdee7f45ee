"""Handing built envelopes to Celery, one at a time or many in one batch."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from functools import cached_property
from typing import Any, Final

from celery import Celery, Task

from typedqueue._celery_app import visibility_timeout_s
from typedqueue._embedded import EmbeddedWorker
from typedqueue._envelope import Envelope
from typedqueue._wire import DUE, SENT, now_ms

# Publishing is tried twice. A refused connection fails a dispatch at once; a
# hung broker within three socket timeouts (the second try reconnects): 6.2 s
# measured, 8.2 s with a dedupe lock taken first, "within 9 s" in the README.
PUBLISH_RETRY_POLICY: Final = {
    "max_retries": 1,
    "interval_start": 0.2,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
MIN_HOP_MS: Final = 500
# Celery's own limit for the argument summaries that logs and Flower show.
REPR_MAX_SIZE: Final = 1024


class Publisher:
    """Publishes the messages of a runtime's jobs through its Celery app."""

    def __init__(
        self,
        app: Celery,
        tasks: Mapping[str, Task[Any, Any]],
        embedded_worker: EmbeddedWorker | None,
    ) -> None:
        self._app = app
        self._tasks = tasks
        self._embedded_worker = embedded_worker

    @cached_property
    def hop_ms(self) -> int:
        """The longest countdown a message is published with.

        Half the broker's visibility timeout, so a message waiting in a
        worker for its countdown is never handed out a second time.
        """
        return max(MIN_HOP_MS, int(visibility_timeout_s(self._app) * 1000 / 2))

    def publish(self, envelope: Envelope) -> None:
        """Publish one envelope."""
        with self._tracked([envelope]):
            headers, delay_ms = self._schedule(envelope)
            self.send(
                envelope.name,
                envelope.job_id,
                envelope.queue,
                envelope.fields,
                headers,
                delay_ms,
            )

    def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Publish envelopes over one connection, pipelined where kombu can.

        Each message is built by Celery as :meth:`publish` builds it, and
        Celery's publish signals fire for each; on a Redis broker kombu then
        sends them all in one pipeline instead of one round trip each.
        """
        if not envelopes:
            return
        if self._app.conf.task_always_eager:
            for envelope in envelopes:
                self.publish(envelope)
            return

        amqp = self._app.amqp
        lineage = self._lineage()
        with self._tracked(envelopes), self._app.producer_or_acquire() as producer:
            batch = getattr(producer, "batch", None)
            # One flush at the end: kombu sends nothing until every message
            # of the call is built.
            with batch(max_size=2 * len(envelopes)) if batch else nullcontext():
                for envelope in envelopes:
                    headers, delay_ms = self._schedule(envelope)
                    message = amqp.as_task_v2(
                        envelope.job_id,
                        envelope.name,
                        kwargs=envelope.fields,
                        countdown=delay_ms / 1000 if delay_ms else None,
                        argsrepr="()",
                        kwargsrepr=_summary(envelope.fields),
                        **lineage,
                    )
                    amqp.send_task_message(
                        producer,
                        envelope.name,
                        message,
                        queue=envelope.queue,
                        headers={**headers, SENT: now_ms()},
                        retry=False,
                    )

    def send(
        self,
        name: str,
        job_id: str,
        queue: str,
        fields: dict[str, Any],
        headers: dict[str, Any],
        delay_ms: int,
        retries: int = 0,
    ) -> None:
        """Publish one message of job ``name``; ``retries`` is its attempt - 1."""
        options: dict[str, Any] = {
            "task_id": job_id,
            "queue": queue,
            "headers": {**headers, SENT: now_ms()},
            "retries": retries,
            "retry_policy": PUBLISH_RETRY_POLICY,
        }
        if delay_ms:
            # A countdown of 0 would still make Celery stamp an ETA.
            options["countdown"] = delay_ms / 1000
        self._tasks[name].apply_async(kwargs=fields, **options)

    def _schedule(self, envelope: Envelope) -> tuple[dict[str, Any], int]:
        """The headers and countdown of an envelope's first message."""
        if envelope.delay_ms <= self.hop_ms:
            return envelope.headers, envelope.delay_ms
        # Redis hands a delayed message to a worker at once, and gives it to
        # another worker if it stays unacknowledged past the visibility
        # timeout: every copy would then run when due. A long delay therefore
        # travels in hops well inside that timeout.
        headers = {**envelope.headers, DUE: now_ms() + envelope.delay_ms}
        return headers, self.hop_ms

    def _lineage(self) -> dict[str, Any]:
        """Root and parent ids, as Celery sets them for a job sent from a job."""
        parent = self._app.current_worker_task
        if parent is None or parent.request.id is None:
            return {}
        request = parent.request
        return {"root_id": request.root_id or request.id, "parent_id": request.id}

    @contextmanager
    def _tracked(self, envelopes: Sequence[Envelope]) -> Iterator[None]:
        """Count the envelopes as pending in the embedded worker, if any."""
        worker = self._embedded_worker
        if worker is None:
            yield
            return
        worker.start()
        for envelope in envelopes:
            worker.track(envelope.job_id)
        try:
            yield
        except BaseException:
            for envelope in envelopes:
                worker.forget(envelope.job_id)
            raise


def _summary(fields: dict[str, Any]) -> str:
    """The fields as Celery's logs and Flower show them, cut to Celery's size."""
    # repr() is far cheaper than Celery's saferepr, which bulk publishing
    # would otherwise spend most of its time in.
    text = repr(fields)
    return text if len(text) <= REPR_MAX_SIZE else f"{text[: REPR_MAX_SIZE - 3]}..."
