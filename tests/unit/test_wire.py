"""Reading typedqueue's headers back in the worker."""

from __future__ import annotations

from typing import Any

import pytest

from typedqueue._wire import (
    PoisonMessage,
    Received,
    bind,
    encode_session,
    read_headers,
)

SECRET = b"s3cret"
FIELDS = {"to": "a@b.c"}
BINDING = bind("email", "job-1", FIELDS, {}, 3)


def _read(headers: dict[str, Any], secret: bytes | None = None) -> Received:
    return read_headers(
        headers,
        job_name="email",
        job_id="job-1",
        fields=FIELDS,
        default_max_attempts=3,
        secret=secret,
    )


def test_plain_celery_message_gets_the_defaults() -> None:
    """A message without typedqueue headers runs with the job's defaults."""
    assert _read({}) == Received(
        headers={},
        max_attempts=3,
        meta={},
        session=None,
        lock=None,
        due_ms=None,
        schema=None,
        sent_ms=None,
        suspect=False,
    )


def test_signed_session_round_trips() -> None:
    """A session signed for this job id reads back equal."""
    session = {"user": "ü", "roles": ["admin"], "n": 1.5}

    headers = encode_session(session, BINDING, SECRET)

    assert "ü" not in str(headers)
    assert _read(headers, SECRET).session == session


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (encode_session({"u": 1}, BINDING, None), "not signed"),
        (
            encode_session({"u": 1}, bind("email", "job-2", FIELDS, {}, 3), SECRET),
            "does not match",
        ),
        (
            encode_session(
                {"u": 1}, bind("email", "job-1", {"to": "x"}, {}, 3), SECRET
            ),
            "does not match",
        ),
        (
            encode_session(
                {"u": 1}, bind("email", "job-1", FIELDS, {"m": 1}, 3), SECRET
            ),
            "does not match",
        ),
        (
            encode_session({"u": 1}, bind("email", "job-1", FIELDS, {}, 9), SECRET),
            "does not match",
        ),
        (
            encode_session({"u": 1}, bind("other", "job-1", FIELDS, {}, 3), SECRET),
            "does not match",
        ),
        (encode_session({"u": 1}, BINDING, b"other"), "does not match"),
        ({"tq_session": 5}, "not an encoded session"),
        ({"tq_session": "bm90IGpzb24="}, "not an encoded session"),
    ],
)
def test_bad_sessions_are_poison(headers: dict[str, Any], reason: str) -> None:
    """A signature binds job, id, payload, meta and attempts, with the secret."""
    with pytest.raises(PoisonMessage, match=reason):
        _read(headers, SECRET)


def test_without_a_secret_signatures_are_not_checked() -> None:
    """A worker with no secret reads signed and unsigned sessions alike."""
    assert _read(encode_session("s", BINDING, SECRET)).session == "s"
    assert _read(encode_session("s", BINDING, None)).session == "s"


@pytest.mark.parametrize(
    "headers",
    [
        {"tq_max_attempts": "2"},
        {"tq_max_attempts": True},
        {"tq_max_attempts": 2.5},
        {"tq_max_attempts": 10**9},
        {"tq_meta": [1]},
        {"tq_lock": {"key": "typedqueue:dedupe:1:a:b"}},
        {"tq_lock": {"key": "session:admin", "token": "t"}},
        {"tq_due_ms": "soon"},
        {"tq_schema": 1},
        {"tq_sent_ms": "now"},
        {"tq_v": 2},
    ],
)
def test_malformed_headers_are_poison(headers: dict[str, Any]) -> None:
    """Each malformed header makes the message poison, naming the header."""
    name = next(iter(headers))

    with pytest.raises(PoisonMessage, match=f"header {name} is"):
        _read(headers)


@pytest.mark.parametrize(
    ("headers", "suspect"),
    [({}, False), ({"redelivered": True}, True), ({"tq_copy": 1}, True)],
)
def test_possible_copies_are_suspect(headers: dict[str, Any], suspect: bool) -> None:
    """Messages kombu handed out again, or typedqueue sent back, are suspect."""
    assert _read(headers).suspect is suspect
