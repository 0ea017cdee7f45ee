"""The runtime: owns the Celery app, the declared queues and the jobs."""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar

import redis
from celery import Celery, Task, signals

from typedqueue import _wire as wire
from typedqueue._backoff import Backoff
from typedqueue._celery_app import (
    SOCKET_TIMEOUT_S,
    declare_queues,
    new_app,
    visibility_timeout_s,
)
from typedqueue._client import Client
from typedqueue._embedded import EmbeddedWorker
from typedqueue._errors import ConfigurationError, UnknownJobError, shown
from typedqueue._guard import Guard
from typedqueue._job import Handler, Job, is_schema, schema_of
from typedqueue._locks import LockStore, MemoryLockStore, RedisLockStore
from typedqueue._options import Q, check_max_attempts
from typedqueue._publisher import Publisher
from typedqueue._session import get_session
from typedqueue._task import run_job

P = TypeVar("P")

logger = logging.getLogger(__name__)

BROKER_URL_ENV = "TYPEDQUEUE_BROKER_URL"
REDIS_URL_ENV = "TYPEDQUEUE_REDIS_URL"
RESULT_BACKEND_ENV = "TYPEDQUEUE_RESULT_BACKEND"
SESSION_SECRET_ENV = "TYPEDQUEUE_SESSION_SECRET"

DEFAULT_DEDUPE_TTL_S = 3600.0
DEFAULT_LEASE_S = 30.0
MIN_SECONDS = 0.01
MAX_SECONDS = 365 * 24 * 3600.0


# The runtime of each Celery app, for the signal below.
_runtimes: weakref.WeakKeyDictionary[Celery, QueueRuntime[Any]] = (
    weakref.WeakKeyDictionary()
)


@signals.task_unknown.connect
def _reject_unknown(sender: Any, name: str, id: str, message: Any, **_: Any) -> None:
    # Celery logs the whole message too; this is the line that says why.
    logger.error(
        "Rejected job %s[%s]: this worker has no job or task of that name",
        name,
        id,
        extra={"job_id": id, "job_name": name},
    )
    app: Any = getattr(sender, "app", None)
    runtime = _runtimes.get(app) if app is not None else None
    lock = wire.lock_of(getattr(message, "headers", None) or {})
    if runtime is None or lock is None or runtime.redis_url is None:
        return
    try:
        runtime.locks.release(*lock)
    except redis.RedisError as exc:
        logger.warning("Could not release the dedupe lock of job %s: %s", id, exc)


class QueueRuntime(Generic[Q]):
    """Owns a Celery app, its declared queues and the jobs defined on it.

    ``Q`` is the ``Literal`` type of the queue names, so type checkers refuse
    a queue that was not declared::

        Queue = Literal["default", "low"]
        runtime = QueueRuntime[Queue](queues=("default", "low"))

    Settings come from the arguments, else from ``TYPEDQUEUE_BROKER_URL``,
    ``TYPEDQUEUE_REDIS_URL``, ``TYPEDQUEUE_RESULT_BACKEND`` and
    ``TYPEDQUEUE_SESSION_SECRET``. With no broker at all the runtime is
    embedded: an in-memory broker, a worker thread in this process and
    in-process dedupe locks, so it needs no server.

    ``session_secret`` signs every session a dispatch sends, and makes the
    worker refuse a session that is unsigned or signed with another secret.
    ``lease_s`` is how long a killed worker's attempt stays claimed before a
    redelivered copy may run it again.
    """

    def __init__(
        self,
        *,
        queues: Sequence[Q],
        celery_app: Celery | None = None,
        broker_url: str | None = None,
        redis_url: str | None = None,
        result_backend: str | None = None,
        session_provider: Callable[[], Any] | None = None,
        session_secret: str | bytes | None = None,
        name: str = "typedqueue",
        dedupe_ttl_s: float = DEFAULT_DEDUPE_TTL_S,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self.queues: tuple[Q, ...] = _check_queues(queues)
        self.dedupe_ttl_s = _check_seconds("dedupe_ttl_s", dedupe_ttl_s)
        self.lease_s = _check_seconds("lease_s", lease_s)
        secret = session_secret or os.environ.get(SESSION_SECRET_ENV) or None
        self.session_secret = secret.encode() if isinstance(secret, str) else secret
        self._session_provider = session_provider
        self._jobs: dict[str, Job[Any]] = {}
        self._tasks: dict[str, Task[Any, Any]] = {}

        broker_url = broker_url or os.environ.get(BROKER_URL_ENV) or None
        result_backend = result_backend or os.environ.get(RESULT_BACKEND_ENV) or None
        self.embedded = celery_app is None and broker_url is None
        if celery_app is None:
            celery_app = new_app(name, broker_url, result_backend, self.queues)
        else:
            declare_queues(celery_app, self.queues)
        self.celery = celery_app
        _runtimes[celery_app] = self

        self.redis_url = redis_url or os.environ.get(REDIS_URL_ENV) or None
        broker = str(celery_app.conf.broker_url or "")
        if self.redis_url is None and broker.startswith(("redis://", "rediss://")):
            self.redis_url = broker
        self._embedded_worker = EmbeddedWorker(celery_app) if self.embedded else None

    def __repr__(self) -> str:
        where = "embedded" if self.embedded else self.celery.conf.broker_url
        return f"<QueueRuntime queues={list(self.queues)} broker={where}>"

    def job(
        self,
        name: str,
        *,
        max_attempts: int = 1,
        queue: Q | None = None,
        backoff: Backoff | None = None,
        dedupe_ttl_s: float | None = None,
        schema: type[Any] | None = None,
    ) -> Callable[[Handler[P]], Job[P]]:
        """Declare the decorated function as the handler of job ``name``.

        The handler takes ``(payload, ctx)``; the payload's annotation, a
        pydantic model or a TypedDict, is the job's input schema unless
        ``schema`` is given. ``max_attempts`` and ``queue`` are the defaults
        for every dispatch of the job. ``dedupe_ttl_s`` bounds how long a
        crashed job's dedupe lock outlives its delay and retry waits.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"invalid job name {shown(name)}: use a non-empty string"
            )
        if name in self._jobs:
            raise ConfigurationError(
                f"job {shown(name)} is already declared on this runtime; "
                "give each job its own name"
            )
        check_max_attempts(max_attempts)
        if queue is not None and queue not in self.queues:
            raise ConfigurationError(
                f"job {shown(name)} names queue {shown(queue)}, which is not declared; "
                f"use one of {', '.join(map(repr, self.queues))}"
            )
        if schema is not None and not is_schema(schema):
            raise ConfigurationError(
                f"schema {shown(schema)} of job {shown(name)} is neither a pydantic "
                "model nor a TypedDict"
            )

        def declare(handler: Handler[P]) -> Job[P]:
            job: Job[P] = Job(
                runtime=self,
                name=name,
                schema=schema or schema_of(handler),
                handler=handler,
                max_attempts=max_attempts,
                queue=queue,
                backoff=backoff or Backoff(),
                dedupe_ttl_s=_check_seconds(
                    "dedupe_ttl_s", dedupe_ttl_s or self.dedupe_ttl_s
                ),
            )
            self._register(job)
            return job

        return declare

    def create_client(self) -> Client[Q]:
        """Return a client that dispatches this runtime's jobs."""
        return Client(self)

    @cached_property
    def default_client(self) -> Client[Q]:
        """The client behind :meth:`Job.delay`."""
        return self.create_client()

    @cached_property
    def locks(self) -> LockStore:
        """Where this runtime keeps dedupe locks."""
        if self.embedded:
            return MemoryLockStore()
        if self.redis_url is None:
            raise ConfigurationError(
                "dedupe_key needs Redis, and this runtime has none: pass "
                f"redis_url= to QueueRuntime or set {REDIS_URL_ENV}"
            )
        return RedisLockStore(self.redis)

    @cached_property
    def redis(self) -> redis.Redis:
        """The client of the Redis server behind dedupe locks and claims."""
        if self.redis_url is None:
            raise ConfigurationError(
                f"this runtime has no Redis: pass redis_url= or set {REDIS_URL_ENV}"
            )
        return redis.Redis.from_url(
            self.redis_url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )

    @cached_property
    def guard(self) -> Guard | None:
        """Claims of running attempts, or ``None`` without Redis to keep them.

        The embedded runtime needs none: its in-memory broker never
        redelivers.
        """
        if self.embedded or self.redis_url is None:
            return None
        return Guard(self.redis, self.lease_s, visibility_timeout_s(self.celery))

    def check_owns(self, job: object) -> None:
        """Refuse a job that was not declared on this runtime."""
        if not isinstance(job, Job) or self._jobs.get(job.name) is not job:
            known = ", ".join(map(repr, self._jobs)) or "none"
            raise UnknownJobError(
                f"{shown(job)} is not a job of this runtime (its jobs: {known}); "
                "dispatch it with a client of the runtime that declared it"
            )

    def capture_session(self) -> Any:
        """The session a dispatch from here carries when none is given."""
        if self._session_provider is not None:
            return self._session_provider()
        return get_session()

    @cached_property
    def publisher(self) -> Publisher:
        """What hands this runtime's messages to Celery."""
        return Publisher(self.celery, self._tasks, self._embedded_worker)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until the embedded worker has finished every job dispatched here.

        Returns whether it did within ``timeout_s``. Only an embedded runtime
        knows its worker; with a broker, the workers are other processes.
        """
        if self._embedded_worker is None:
            raise ConfigurationError(
                "wait_idle() needs the embedded runtime; with a broker the "
                "jobs run in separate worker processes"
            )
        return self._embedded_worker.wait_idle(timeout_s)

    def close(self) -> None:
        """Stop the embedded worker, if one was started."""
        if self._embedded_worker is not None:
            self._embedded_worker.stop()

    def _register(self, job: Job[Any]) -> None:
        def run(task: Task[Any, Any], *args: Any, **fields: Any) -> Any:
            return run_job(task, job, args, fields)

        # Celery compiles a function of this name to check call signatures,
        # so it must be an identifier even when the job name is "app.send".
        run.__name__ = run.__qualname__ = re.sub(r"\W|^(?=\d)", "_", job.name)
        # The registry as it stands, without finalizing the app as
        # app.tasks would.
        registered = getattr(self.celery, "_tasks", None) or {}
        if job.name in registered:
            raise ConfigurationError(
                f"the Celery app already has a task named {job.name!r}; remove "
                "it (the job replaces it) or give the job another name"
            )
        register: Any = self.celery.task
        self._tasks[job.name] = register(
            run,
            name=job.name,
            bind=True,
            shared=False,
            # Registered now, so a later @app.task of the same name is the
            # one Celery refuses, and says so.
            lazy=False,
            # Attempts are counted by typedqueue, never cut short by Celery.
            max_retries=None,
            # Acknowledged once the attempt has ended: a worker that dies
            # mid-job leaves the message to be delivered again.
            acks_late=True,
            reject_on_worker_lost=True,
        )
        self._jobs[job.name] = job


def _check_queues(queues: Sequence[Q]) -> tuple[Q, ...]:
    names = tuple(queues) if not isinstance(queues, str) else ()
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigurationError(
            f"invalid queues {shown(queues)}: declare at least one queue as a "
            'tuple of non-empty names, such as ("default", "low")'
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"queues {shown(queues)} names a queue twice")
    return names


def _check_seconds(setting: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_SECONDS <= value <= MAX_SECONDS
    ):
        raise ConfigurationError(
            f"invalid {setting} {shown(value)}: use a number of seconds from "
            f"{MIN_SECONDS} to {MAX_SECONDS:.0f} (one year)"
        )
    return float(value)
