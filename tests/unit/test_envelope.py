"""The build step: every check and translation made before Celery is touched."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from typedqueue import (
    Backoff,
    InvalidOptionError,
    InvalidPayloadError,
    JobContext,
    QueueRuntime,
    UnknownJobError,
    UnknownQueueError,
    session_scope,
)
from typedqueue._envelope import Envelope, build_envelope, parse_lock_token
from typedqueue._wire import read_headers

Queue = Literal["default", "low"]


class Email(BaseModel):
    to: str
    count: int = 1


class EmailDict(TypedDict):
    to: str


@pytest.fixture
def runtime() -> QueueRuntime[Queue]:
    return QueueRuntime[Queue](queues=("default", "low"))


def _job(runtime: QueueRuntime[Queue], **settings: Any) -> Any:
    def handler(payload: Email, ctx: JobContext) -> None: ...

    return runtime.job("email", **settings)(handler)


def _build(
    runtime: QueueRuntime[Queue], job: Any, payload: object, **options: Any
) -> Envelope:
    assert job.runtime is runtime
    return build_envelope(job, payload, options)


def _session(envelope: Envelope) -> Any:
    """The session a worker reads back from the envelope's headers."""
    received = read_headers(
        envelope.headers,
        job_name=envelope.name,
        job_id=envelope.job_id,
        fields=envelope.fields,
        default_max_attempts=1,
        secret=None,
    )
    return received.session


def test_defaults(runtime: QueueRuntime[Queue]) -> None:
    """No options: first queue, no delay, one attempt, no meta, session or lock."""
    envelope = _build(runtime, _job(runtime), {"to": "a@b.c"})

    assert envelope.queue == "default"
    assert envelope.delay_ms == 0
    assert envelope.fields == {"to": "a@b.c", "count": 1}
    assert envelope.headers == {
        "tq_v": 1,
        "tq_max_attempts": 1,
        "tq_schema": _job(QueueRuntime(queues=("x",))).fingerprint,
    }
    assert envelope.lock is None


def test_job_settings_are_the_dispatch_defaults(runtime: QueueRuntime[Queue]) -> None:
    """A job's own queue and max_attempts apply when the dispatch names none."""
    job = _job(runtime, queue="low", max_attempts=4)

    envelope = _build(runtime, job, {"to": "a@b.c"})
    overridden = _build(runtime, job, {"to": "a@b.c"}, queue="default", max_attempts=2)

    assert (envelope.queue, envelope.headers["tq_max_attempts"]) == ("low", 4)
    assert (overridden.queue, overridden.headers["tq_max_attempts"]) == ("default", 2)


def test_unknown_queue_lists_declared_queues(runtime: QueueRuntime[Queue]) -> None:
    """The error names the bad queue and every declared one."""
    with pytest.raises(UnknownQueueError) as raised:
        _build(runtime, _job(runtime), {"to": "a@b.c"}, queue="lwo")

    assert str(raised.value) == (
        "unknown queue 'lwo' for job 'email': "
        "use one of the declared queues 'default', 'low'"
    )


def test_unknown_option_is_named(runtime: QueueRuntime[Queue]) -> None:
    """A misspelt option is refused with the list of real ones."""
    with pytest.raises(InvalidOptionError, match="unknown dispatch option 'dely'"):
        _build(runtime, _job(runtime), {"to": "a@b.c"}, dely="1s")


def test_meta_is_copied_as_json(runtime: QueueRuntime[Queue]) -> None:
    """meta travels as a JSON copy: tuples become lists, later edits do not leak."""
    meta = {"ids": (1, 2), "nested": {"ok": True}}
    envelope = _build(runtime, _job(runtime), {"to": "a@b.c"}, meta=meta)
    meta["nested"]["ok"] = False

    assert envelope.headers["tq_meta"] == {"ids": [1, 2], "nested": {"ok": True}}


def test_meta_error_names_the_path(runtime: QueueRuntime[Queue]) -> None:
    """An unserializable value is reported where it sits."""
    with pytest.raises(InvalidOptionError, match=r"meta\['a'\]\[1\] is <object"):
        _build(runtime, _job(runtime), {"to": "a@b.c"}, meta={"a": [1, object()]})


def test_session_is_captured_from_the_context(runtime: QueueRuntime[Queue]) -> None:
    """The current session is sent; False sends none; a value overrides it."""
    job = _job(runtime)
    with session_scope({"user": 1}):
        captured = _build(runtime, job, {"to": "a@b.c"})
        suppressed = _build(runtime, job, {"to": "a@b.c"}, session=False)
        explicit = _build(runtime, job, {"to": "a@b.c"}, session={"user": 2})
    outside = _build(runtime, job, {"to": "a@b.c"})

    assert _session(captured) == {"user": 1}
    assert "tq_session" not in suppressed.headers
    assert _session(explicit) == {"user": 2}
    assert "tq_session" not in outside.headers


def test_session_provider_replaces_the_context() -> None:
    """A runtime's session provider is what a dispatch captures."""
    runtime = QueueRuntime[Queue](
        queues=("default",), session_provider=lambda: "from-provider"
    )
    with session_scope("from-context"):
        envelope = _build(runtime, _job(runtime), {"to": "a@b.c"})

    assert _session(envelope) == "from-provider"


def test_unserializable_session_is_refused(runtime: QueueRuntime[Queue]) -> None:
    """A session with no JSON form fails in the caller."""
    with pytest.raises(InvalidOptionError, match="session"):
        _build(runtime, _job(runtime), {"to": "a@b.c"}, session=object())


def test_lock_outlives_delay_and_retries(runtime: QueueRuntime[Queue]) -> None:
    """The lock TTL covers the delay, every backoff wait and the job's own TTL."""
    job = _job(runtime, backoff=Backoff(first_s=1, max_s=10), dedupe_ttl_s=60)

    envelope = _build(
        runtime, job, {"to": "a@b.c"}, delay="2s", max_attempts=3, dedupe_key="u:42"
    )

    assert envelope.lock is not None
    assert envelope.lock.key == "typedqueue:dedupe:5:email:u:42"
    assert envelope.lock.ttl_ms == 2000 + (1 + 2) * 1000 + 60_000
    assert parse_lock_token(envelope.lock.token) == (envelope.job_id, "default")


def test_bad_payload_raises_validation_error(runtime: QueueRuntime[Queue]) -> None:
    """A payload that misses the schema raises pydantic's error for that field."""
    with pytest.raises(ValidationError) as raised:
        _build(runtime, _job(runtime), {"to": "a@b.c", "count": "many"})

    assert [error["loc"] for error in raised.value.errors()] == [("count",)]


def test_typeddict_schema(runtime: QueueRuntime[Queue]) -> None:
    """A TypedDict job validates and sends the dict's fields."""

    @runtime.job("email_dict")
    def handler(payload: EmailDict, ctx: JobContext) -> None: ...

    assert _build(runtime, handler, {"to": "x"}).fields == {"to": "x"}


def test_foreign_job_is_refused(runtime: QueueRuntime[Queue]) -> None:
    """A job declared on another runtime cannot be dispatched through this one."""
    other = QueueRuntime[Queue](queues=("default",))
    job = _job(other)

    with pytest.raises(UnknownJobError, match="not a job of this runtime"):
        runtime.create_client().dispatch(job, {"to": "a@b.c"})


def test_unprintable_int_in_payload_is_a_payload_error(
    runtime: QueueRuntime[Queue],
) -> None:
    """An int too long to print passes pydantic but cannot be sent."""
    with pytest.raises(InvalidPayloadError, match="cannot be sent as JSON"):
        _build(runtime, _job(runtime), {"to": "a", "count": 10**5000}, session="s")
