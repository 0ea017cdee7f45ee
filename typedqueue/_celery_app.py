"""The Celery app a runtime creates, or adopts, and the settings it relies on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from celery import Celery
from kombu import Exchange, Queue

# How long a Redis call may hang before a dispatch gives up on it.
SOCKET_TIMEOUT_S: Final = 2.0
# kombu's Redis transport default.
DEFAULT_VISIBILITY_TIMEOUT_S: Final = 3600


def new_app(
    name: str,
    broker_url: str | None,
    result_backend: str | None,
    queues: Sequence[str],
) -> Celery:
    """A Celery app for the runtime: in-memory without a broker URL."""
    app = Celery(
        name,
        broker=broker_url or "memory://localhost/",
        backend=result_backend or (None if broker_url else "cache+memory://"),
    )
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A typo'd queue must fail at publish, not sit unread in the broker.
        task_create_missing_queues=False,
        broker_connection_retry_on_startup=True,
        # With late acks, a worker holding several unstarted messages would
        # keep them from idle workers, and past the visibility timeout.
        worker_prefetch_multiplier=1,
    )
    if broker_url is None:
        # The in-memory transport polls; its default 1 s would add a second
        # to every job's latency.
        app.conf.broker_transport_options = {"polling_interval": 0.01}
    elif broker_url.startswith(("redis://", "rediss://")):
        # Without timeouts a hung Redis would hang every dispatch for good.
        app.conf.broker_transport_options = {
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": SOCKET_TIMEOUT_S,
        }
    declare_queues(app, queues)
    app.conf.task_default_queue = queues[0]
    return app


def declare_queues(app: Celery, queues: Sequence[str]) -> None:
    """Add the runtime's queues to the app's, keeping those it had."""
    declared: list[Queue] = list(app.conf.task_queues or ())
    if not declared and app.conf.task_default_queue not in queues:
        # Without task_queues the app consumed its default queue; keep it.
        declared.append(_queue(app.conf.task_default_queue))
    names = {queue.name for queue in declared}
    declared.extend(_queue(name) for name in queues if name not in names)
    app.conf.task_queues = declared


def visibility_timeout_s(app: Celery) -> float:
    """How long the broker waits for an ack before handing a message out again."""
    options: dict[str, Any] = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT_S))


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name), routing_key=name)
