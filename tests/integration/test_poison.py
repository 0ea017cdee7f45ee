"""Messages no attempt can run: rejected once, clearly, and the worker goes on."""

from __future__ import annotations

import uuid
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.conftest import Runs, Worker, outcome, wait_for
from typedqueue._locks import lock_key
from typedqueue._wire import bind, encode_session

POISON = [
    (
        {"kwargs": {"tag": "T", "fail_until": "many"}},
        "does not match Probe (fail_until",
    ),
    ({"args": ["T"]}, "positional arguments"),
    ({"headers": {"tq_max_attempts": "x"}}, "header tq_max_attempts is 'x'"),
    ({"headers": {"tq_max_attempts": 0}}, "header tq_max_attempts is 0"),
    ({"headers": {"tq_meta": "junk"}}, "header tq_meta is 'junk'"),
    ({"headers": {"tq_lock": "junk"}}, "header tq_lock is 'junk'"),
    ({"headers": {"tq_lock": {"key": "other:key", "token": "t"}}}, "header tq_lock"),
    ({"headers": {"tq_session": "%%%"}}, "not an encoded session"),
    ({"headers": {"tq_v": 99}}, "header tq_v is 99"),
    ({"headers": {"tq_due_ms": 10**15}}, "header tq_due_ms"),
    ({"retries": -3}, "header retries is -3"),
]


def _send(app: ModuleType, name: str, message: dict[str, Any], tag: str) -> str:
    """Publish a hand-made message the way an old or foreign producer would."""
    job_id = str(uuid.uuid4())
    message = {"kwargs": {"tag": tag}, **message}
    if message["kwargs"].get("tag") == "T":
        message["kwargs"] = {**message["kwargs"], "tag": tag}
    app.runtime.celery.send_task(name, task_id=job_id, queue="low", **message)
    return job_id


def test_poison_message_frees_its_dedupe_lock(
    app: ModuleType, worker: Worker, rdb: redis.Redis, tag: str
) -> None:
    """A rejected message that names a dedupe lock releases it."""
    key = lock_key("probe", tag)
    rdb.set(key, "token-1")
    lock = {"key": key, "token": "token-1"}

    job_id = _send(
        app, "probe", {"headers": {"tq_max_attempts": 0, "tq_lock": lock}}, tag
    )

    assert outcome(app, job_id).state == "FAILURE"
    wait_for(lambda: rdb.exists(key) == 0, what="the lock's release")


@pytest.mark.parametrize(("message", "reason"), POISON)
def test_poison_message_is_rejected_once(
    app: ModuleType,
    worker: Worker,
    client: Any,
    runs: Runs,
    tag: str,
    message: dict[str, Any],
    reason: str,
) -> None:
    """The job fails without running or retrying, one line says why, work goes on."""
    job_id = _send(app, "probe", message, tag)

    result = outcome(app, job_id)
    assert result.state == "FAILURE"
    [line] = [
        line
        for line in worker.output().splitlines()
        if f"Rejected job probe[{job_id}]" in line
    ]
    assert reason in line
    assert runs.of(tag) == []

    client.dispatch(app.probe, {"tag": f"{tag}-next"})
    runs.wait(f"{tag}-next", 1)


def test_unknown_job_is_rejected_once(
    app: ModuleType, worker: Worker, client: Any, rdb: redis.Redis, runs: Runs, tag: str
) -> None:
    """A message for a job the worker does not know fails and frees its lock."""
    key = lock_key("no_such_job", tag)
    rdb.set(key, "token-1")
    lock = {"key": key, "token": "token-1"}
    job_id = _send(app, "no_such_job", {"headers": {"tq_lock": lock}}, tag)

    assert outcome(app, job_id).state == "FAILURE"
    assert rdb.exists(key) == 0
    line = f"Rejected job no_such_job[{job_id}]: this worker has no job"
    wait_for(lambda: line in worker.output(), what="the rejection line")

    client.dispatch(app.probe, {"tag": tag})
    runs.wait(tag, 1)


def test_other_schema_version_warns_and_still_runs(
    app: ModuleType, worker: Worker, runs: Runs, tag: str
) -> None:
    """A producer's differing schema fingerprint is logged; a valid payload runs."""
    job_id = _send(app, "probe", {"headers": {"tq_schema": "0123456789abcdef"}}, tag)

    [run] = runs.wait(tag, 1)
    assert run["ctx"].job_id == job_id
    assert "sent with another version of Probe (schema 0123456789abcdef" in (
        worker.output()
    )


@pytest.mark.parametrize(
    ("signature_of", "reason"),
    [
        (None, "the session is not signed"),
        ("another session", "signature does not match"),
        ("wrong secret", "signature does not match"),
        ("another job", "signature does not match"),
        ("another payload", "signature does not match"),
    ],
)
def test_forged_session_is_refused(
    app: ModuleType,
    worker: Worker,
    runs: Runs,
    tag: str,
    signature_of: str | None,
    reason: str,
) -> None:
    """A session without the runtime's valid signature never reaches a handler."""
    job_id = str(uuid.uuid4())
    session = {"user": "admin"}
    binding = bind("probe", job_id, {"tag": tag}, {}, 1)
    headers = encode_session(session, binding, secret=None)
    if signature_of == "another session":
        signed = encode_session({"user": "guest"}, binding, b"test-secret")
        headers["tq_session_sig"] = signed["tq_session_sig"]
    elif signature_of == "wrong secret":
        headers = encode_session(session, binding, b"not-the-secret")
    elif signature_of == "another job":
        other = bind("probe", str(uuid.uuid4()), {"tag": tag}, {}, 1)
        headers = encode_session(session, other, b"test-secret")
    elif signature_of == "another payload":
        other = bind("probe", job_id, {"tag": "other"}, {}, 1)
        headers = encode_session(session, other, b"test-secret")

    app.runtime.celery.send_task(
        "probe", task_id=job_id, queue="low", kwargs={"tag": tag}, headers=headers
    )

    assert outcome(app, job_id).state == "FAILURE"
    assert reason in worker.output()
    assert runs.of(tag) == []
