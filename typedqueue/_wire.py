"""typedqueue's part of a Celery message: headers written at dispatch, read back
by the worker.

The payload's fields travel as the task's keyword arguments. Everything else
travels in headers prefixed ``tq_``, since Celery copies every header onto the
task request and would let a bare name such as ``retries`` overwrite its own.
A message sent by plain Celery has none of them and runs with the defaults.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from typedqueue._delay import MAX_DELAY_MS
from typedqueue._errors import InvalidOptionError, shown
from typedqueue._locks import KEY_PREFIX
from typedqueue._options import check_max_attempts, is_whole

PREFIX: Final = "tq_"
VERSION: Final = "tq_v"
MAX_ATTEMPTS: Final = "tq_max_attempts"
META: Final = "tq_meta"
SESSION: Final = "tq_session"
SESSION_SIGNATURE: Final = "tq_session_sig"
LOCK: Final = "tq_lock"
DUE: Final = "tq_due_ms"
SCHEMA: Final = "tq_schema"
SENT: Final = "tq_sent_ms"
COPY: Final = "tq_copy"
PROTOCOL_VERSION: Final = 1


class PoisonMessage(Exception):
    """A message that no attempt can run: malformed, forged or off-schema."""


@dataclass(frozen=True)
class Received:
    """typedqueue's headers of a received message, checked."""

    headers: Mapping[str, Any]
    max_attempts: int
    meta: dict[str, Any]
    session: Any
    lock: tuple[str, str] | None
    due_ms: int | None
    schema: str | None
    sent_ms: int | None
    suspect: bool
    """Whether the message may be a copy of one that already ran."""


def now_ms() -> int:
    return int(time.time() * 1000)


def bind(
    name: str,
    job_id: str,
    fields: Mapping[str, Any],
    meta: Mapping[str, Any],
    max_attempts: int,
) -> bytes:
    """What a session's signature covers besides the session itself.

    A signed session cannot be moved onto another job, nor onto a forged
    payload, meta or attempt count of its own job.
    """
    message = [name, job_id, fields, meta, max_attempts]
    text = json.dumps(
        message, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text.encode()


def encode_session(
    session: Any, binding: bytes, secret: bytes | None
) -> dict[str, str]:
    """The headers carrying ``session``, signed when there is a secret.

    The session is sent as base64 of its JSON, so no log line that prints a
    message's headers shows it in clear text. That is encoding, not
    encryption: whoever can read the broker can read the session.
    """
    raw = json.dumps(session, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {SESSION: base64.urlsafe_b64encode(raw).decode("ascii")}
    if secret is not None:
        headers[SESSION_SIGNATURE] = _sign(secret, binding, raw)
    return headers


def read_headers(
    headers: Mapping[str, Any],
    *,
    job_name: str,
    job_id: str,
    fields: Mapping[str, Any],
    default_max_attempts: int,
    secret: bytes | None,
) -> Received:
    """Check typedqueue's headers of a message; raise PoisonMessage if malformed."""
    version = headers.get(VERSION, PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise PoisonMessage(
            f"header {VERSION} is {shown(version)}; this worker reads version "
            f"{PROTOCOL_VERSION}"
        )

    max_attempts = headers.get(MAX_ATTEMPTS, default_max_attempts)
    try:
        check_max_attempts(max_attempts)
    except InvalidOptionError:
        raise PoisonMessage(f"header {MAX_ATTEMPTS} is {shown(max_attempts)}") from None

    meta = headers.get(META, {})
    if not isinstance(meta, dict):
        raise PoisonMessage(f"header {META} is {shown(meta)}, not an object")

    lock = _read_lock(headers.get(LOCK))

    due_ms = headers.get(DUE)
    if due_ms is not None and (
        not is_whole(due_ms) or due_ms > now_ms() + MAX_DELAY_MS
    ):
        raise PoisonMessage(f"header {DUE} is {shown(due_ms)}")

    schema = headers.get(SCHEMA)
    if schema is not None and not isinstance(schema, str):
        raise PoisonMessage(f"header {SCHEMA} is {shown(schema)}")

    sent_ms = headers.get(SENT)
    if sent_ms is not None and not is_whole(sent_ms):
        raise PoisonMessage(f"header {SENT} is {shown(sent_ms)}")

    return Received(
        headers=headers,
        max_attempts=max_attempts,
        meta=meta,
        session=_read_session(
            headers, bind(job_name, job_id, fields, meta, max_attempts), secret
        ),
        lock=lock,
        due_ms=due_ms,
        schema=schema,
        sent_ms=sent_ms,
        # kombu marks a message it hands out again; typedqueue marks the
        # copies it sends back itself.
        suspect=bool(headers.get("redelivered") or headers.get(COPY)),
    )


def lock_of(headers: Mapping[str, Any]) -> tuple[str, str] | None:
    """The dedupe lock a message names, if its lock header is well formed."""
    try:
        return _read_lock(headers.get(LOCK))
    except PoisonMessage:
        return None


def _read_lock(lock: object) -> tuple[str, str] | None:
    if lock is None:
        return None
    if isinstance(lock, dict):
        key, token = lock.get("key"), lock.get("token")
        # A lock header may only name a dedupe lock, never another key.
        if (
            isinstance(key, str)
            and key.startswith(KEY_PREFIX)
            and isinstance(token, str)
        ):
            return key, token
    raise PoisonMessage(f"header {LOCK} is {shown(lock)}")


def _read_session(
    headers: Mapping[str, Any], binding: bytes, secret: bytes | None
) -> Any:
    encoded = headers.get(SESSION)
    if encoded is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded.encode("ascii"))
        session = json.loads(raw)
    except (AttributeError, UnicodeError, binascii.Error, ValueError):
        raise PoisonMessage(f"header {SESSION} is not an encoded session") from None

    if secret is not None:
        signature = headers.get(SESSION_SIGNATURE)
        if not isinstance(signature, str):
            raise PoisonMessage("the session is not signed")
        if not hmac.compare_digest(signature, _sign(secret, binding, raw)):
            raise PoisonMessage("the session's signature does not match")
    return session


def _sign(secret: bytes, binding: bytes, raw: bytes) -> str:
    message = binding + b"\n" + raw
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def fingerprint(json_schema: Mapping[str, Any]) -> str:
    """A short, stable digest of a job's input schema."""
    text = json.dumps(json_schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
