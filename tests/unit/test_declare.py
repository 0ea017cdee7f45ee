"""Mistakes in declaring a runtime or a job are caught at declaration."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from typedqueue import ConfigurationError, JobContext, QueueRuntime


class Payload(BaseModel):
    n: int


def test_handler_needs_a_schema_annotation() -> None:
    """A payload annotated with a plain type is refused, naming the fix."""
    runtime = QueueRuntime(queues=("default",))

    def handler(payload: int, ctx: JobContext) -> None: ...

    with pytest.raises(ConfigurationError, match="pydantic model or a TypedDict"):
        runtime.job("bad")(handler)


def test_job_names_are_unique() -> None:
    """Declaring a second job under a name already taken is refused."""
    runtime = QueueRuntime(queues=("default",))

    def handler(payload: Payload, ctx: JobContext) -> None: ...

    runtime.job("twice")(handler)
    with pytest.raises(ConfigurationError, match="already declared"):
        runtime.job("twice")(handler)


def test_job_queue_must_be_declared() -> None:
    """A job's default queue must be one of the runtime's."""
    runtime = QueueRuntime(queues=("default",))

    with pytest.raises(ConfigurationError, match="not declared"):
        runtime.job("x", queue="other")


@pytest.mark.parametrize("queues", [(), "default", ("a", "a"), ("",)])
def test_queues_must_be_distinct_names(queues: Any) -> None:
    """At least one queue, each named, none twice."""
    with pytest.raises(ConfigurationError, match="queue"):
        QueueRuntime(queues=queues)


def test_existing_celery_app_keeps_its_queues() -> None:
    """Adopting an app adds the runtime's queues next to its default one."""
    from celery import Celery

    legacy = Celery("legacy", broker="memory://localhost/")
    QueueRuntime(queues=("typed",), celery_app=legacy)

    assert [queue.name for queue in legacy.conf.task_queues] == ["celery", "typed"]


def test_adopted_redis_broker_serves_the_locks() -> None:
    """With celery_app= on a Redis broker, dedupe locks default to that server."""
    from celery import Celery

    legacy = Celery("legacy", broker="redis://127.0.0.1:6399/3")
    runtime = QueueRuntime(queues=("typed",), celery_app=legacy)

    assert runtime.redis_url == "redis://127.0.0.1:6399/3"
    assert not runtime.embedded


def test_typing_typeddict_is_a_configuration_error() -> None:
    """pydantic's refusal of typing.TypedDict before 3.12 surfaces at declaration."""
    import sys
    import typing

    if sys.version_info >= (3, 12):
        pytest.skip("pydantic accepts typing.TypedDict from Python 3.12 on")

    class Old(typing.TypedDict):
        n: int

    def handler(payload: Old, ctx: JobContext) -> None: ...

    runtime = QueueRuntime(queues=("default",))
    with pytest.raises(ConfigurationError, match=r"typing_extensions\.TypedDict"):
        runtime.job("old", schema=Old)(handler)


def test_unresolvable_annotation_names_the_fix() -> None:
    """A schema defined inside a function cannot be resolved from its name."""

    class Local(BaseModel):
        n: int

    def handler(payload: Local, ctx: JobContext) -> None: ...

    runtime = QueueRuntime(queues=("default",))
    with pytest.raises(ConfigurationError, match="pass schema= to job"):
        runtime.job("local")(handler)
    assert runtime.job("local", schema=Local)(handler).schema is Local
