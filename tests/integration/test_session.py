"""The session travels with the job, and never into the next one."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import redis

from tests.integration.conftest import Runs, Worker, outcome
from typedqueue import session_scope, set_session


def test_no_session_leaks_between_jobs(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """On one worker process: A sees S1, then B (session=False) and C see None."""
    s1 = {"user": "u-1", "roles": ["admin"]}
    try:
        set_session(s1)
        client.dispatch(app.probe, {"tag": f"{tag}-a"})
        client.dispatch(app.probe, {"tag": f"{tag}-b"}, session=False)
        set_session(None)
        client.dispatch(app.probe, {"tag": f"{tag}-c"})
    finally:
        set_session(None)

    [a] = runs.wait(f"{tag}-a", 1)
    [b] = runs.wait(f"{tag}-b", 1)
    [c] = runs.wait(f"{tag}-c", 1)
    assert a["pid"] == b["pid"] == c["pid"]
    assert (a["session"], a["ctx"].session) == (s1, s1)
    assert (b["session"], b["ctx"].session) == (None, None)
    assert (c["session"], c["ctx"].session) == (None, None)


def test_explicit_session_overrides_the_current_one(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """session=<value> is what the handler sees, whatever is current."""
    with session_scope({"user": "current"}):
        client.dispatch(app.probe, {"tag": tag}, session={"user": "explicit"})

    [run] = runs.wait(tag, 1)
    assert run["session"] == {"user": "explicit"}


def test_session_survives_retries(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """Every attempt of a retried job sees the session captured at dispatch."""
    with session_scope("token-42"):
        client.dispatch(app.probe, {"tag": tag, "fail_until": 1}, max_attempts=2)

    first, second = runs.wait(tag, 2)
    assert first["session"] == second["session"] == "token-42"


def test_session_never_reaches_logs_or_results(
    app: ModuleType,
    spawn_worker: Callable[..., Worker],
    rdb: redis.Redis,
    runs: Runs,
    tag: str,
) -> None:
    """At DEBUG a worker's log, and the result backend, never show the session."""
    worker = spawn_worker("high", pool="prefork", loglevel="DEBUG")
    client = app.runtime.create_client()
    marker = f"s3cr3t-{tag}"
    result = client.dispatch(
        app.probe,
        {"tag": tag, "fail_until": 1},
        queue="high",
        max_attempts=2,
        session={"token": marker},
    )

    outcome(app, result.job_id)
    [first, second] = runs.of(tag)
    assert first["session"] == second["session"] == {"token": marker}
    assert result.job_id in worker.output()
    assert marker not in worker.output()
    results = redis.Redis.from_url(app.runtime.celery.conf.result_backend)
    stored = [results.get(key) or b"" for key in results.scan_iter(_type="string")]
    assert stored
    assert not [value for value in stored if marker.encode() in value]
