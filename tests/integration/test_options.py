"""Dispatch options end to end: a real worker on a real Redis server."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.conftest import Runs, outcome
from typedqueue import InvalidDelayError, InvalidOptionError, UnknownQueueError
from typedqueue._locks import lock_key


def _parked(rdb: redis.Redis, queue: str = "high") -> list[dict[str, Any]]:
    """The messages waiting in a queue that no worker consumes."""
    return [json.loads(raw) for raw in rdb.lrange(queue, 0, -1)]


def test_handler_changes_do_not_reach_the_next_attempt(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """Each attempt gets the dispatched meta and session, whatever earlier ones did."""
    result = client.dispatch(
        app.probe,
        {"tag": tag, "fail_until": 1, "scribble": True},
        max_attempts=2,
        meta={"a": 1},
        session={"u": 1},
    )

    assert outcome(app, result.job_id).state == "SUCCESS"
    assert [(run["ctx"].meta, run["session"]) for run in runs.of(tag)] == [
        ({"a": 1}, {"u": 1}),
        ({"a": 1}, {"u": 1}),
    ]


@pytest.mark.parametrize(
    ("delay", "expected_s"), [("1d", 86400), ("1h", 3600), ("5m", 300)]
)
def test_long_delays_stamp_the_due_time(
    client: Any,
    app: ModuleType,
    rdb: redis.Redis,
    high: str,
    delay: str,
    expected_s: int,
) -> None:
    """A long delay makes the job due that far after dispatch.

    Past half the visibility timeout (30 min by default) the message is
    published for a hop of that length and carries the due time.
    """
    before = time.time()
    result = client.dispatch(app.probe, {"tag": "parked"}, queue=high, delay=delay)
    after = time.time()

    [message] = _parked(rdb, high)
    headers = message["headers"]
    eta = datetime.fromisoformat(headers["eta"]).timestamp()
    hop_s = min(expected_s, 1800)
    assert headers["id"] == result.job_id
    assert before + hop_s <= eta <= after + hop_s
    if expected_s > 1800:
        due_s = headers["tq_due_ms"] / 1000
        # The due time is in whole milliseconds.
        assert before + expected_s - 0.001 <= due_s <= after + expected_s
    else:
        assert "tq_due_ms" not in headers


def test_zero_delay_is_due_at_once(
    client: Any, app: ModuleType, rdb: redis.Redis, high: str
) -> None:
    """delay=0 publishes a message without an ETA."""
    client.dispatch(app.probe, {"tag": "parked"}, queue=high, delay=0)

    [message] = _parked(rdb, high)
    assert message["headers"]["eta"] is None


@pytest.mark.parametrize(("delay", "expected_s"), [("500ms", 0.5), (1500, 1.5)])
def test_short_delays_start_when_due(
    client: Any, app: ModuleType, runs: Runs, tag: str, delay: object, expected_s: float
) -> None:
    """The worker starts a delayed job no earlier than its delay after dispatch."""
    dispatched = time.time()
    client.dispatch(app.probe, {"tag": tag}, delay=delay)

    [run] = runs.wait(tag, 1)
    waited_s = run["started"] - dispatched
    # The upper bound only guards against a delay ignored or multiplied.
    assert expected_s <= waited_s < expected_s + 5


def test_max_attempts_counts_every_attempt(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """max_attempts=3 on a handler that always fails runs it exactly 3 times."""
    result = client.dispatch(app.probe, {"tag": tag, "fail_until": 99}, max_attempts=3)

    assert outcome(app, result.job_id).state == "FAILURE"
    assert [run["ctx"].attempt for run in runs.of(tag)] == [1, 2, 3]


@pytest.mark.parametrize("options", [{"max_attempts": 1}, {}])
def test_one_attempt_by_default(
    client: Any, app: ModuleType, runs: Runs, tag: str, options: dict[str, Any]
) -> None:
    """max_attempts=1, and leaving it out (the documented default of 1), run once."""
    result = client.dispatch(app.probe, {"tag": tag, "fail_until": 99}, **options)

    assert outcome(app, result.job_id).state == "FAILURE"
    assert [run["ctx"].max_attempts for run in runs.of(tag)] == [1]


def test_final_error_is_the_handlers_own(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """After the last attempt the job fails with the handler's ValueError itself."""
    result = client.dispatch(app.probe, {"tag": tag, "fail_until": 99}, max_attempts=2)

    final = outcome(app, result.job_id)
    assert final.state == "FAILURE"
    assert type(final.result) is ValueError
    assert final.result.args == ("boom",)
    assert [run["ctx"].attempt for run in runs.of(tag)] == [1, 2]


def test_default_queue_is_the_first_declared(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """A dispatch without queue goes to "low" and runs on a worker of -Q low."""
    result = client.dispatch(app.probe, {"tag": tag})

    assert result.queue == "low"
    [run] = runs.wait(tag, 1)
    assert run["ctx"].queue == "low"


def test_queue_option_routes_the_message(
    client: Any, app: ModuleType, rdb: redis.Redis, high: str
) -> None:
    """queue="high" puts the message in the "high" list, which -Q low never reads."""
    result = client.dispatch(app.probe, {"tag": "parked"}, queue=high)

    assert result.queue == "high"
    assert [m["headers"]["id"] for m in _parked(rdb, high)] == [result.job_id]


def test_meta_reaches_every_attempt(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """ctx.meta is the dispatched meta on attempts 1, 2 and 3."""
    meta = {"tenant": "acme"}
    result = client.dispatch(
        app.probe, {"tag": tag, "fail_until": 2}, max_attempts=3, meta=meta
    )

    assert outcome(app, result.job_id).state == "SUCCESS"
    assert [run["ctx"].meta for run in runs.of(tag)] == [meta, meta, meta]


def test_retry_keeps_the_queue(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """Every attempt of a job runs from the queue it was dispatched to."""
    result = client.dispatch(app.probe, {"tag": tag, "fail_until": 1}, max_attempts=2)

    assert outcome(app, result.job_id).state == "SUCCESS"
    assert [run["ctx"].queue for run in runs.of(tag)] == ["low", "low"]


def test_handler_sees_the_dispatched_job(
    client: Any, app: ModuleType, runs: Runs, tag: str
) -> None:
    """ctx carries the job id and name that dispatch returned."""
    result = client.dispatch(app.probe, {"tag": tag})

    [run] = runs.wait(tag, 1)
    assert (run["ctx"].job_id, run["ctx"].name) == (result.job_id, result.name)
    assert result.name == "probe"


ACCEPTED_DELAYS = '"500ms", "30s", "5m", "1h", "1d"'
BAD_DELAYS = ["5x", "", "-1s", -5, math.nan, math.inf, True, "1.5.0s"]
BAD_META = [{"o": object()}, {"n": math.nan}, {1: "x"}, ["tenant"], {"d": {"t": {1}}}]
BAD_OPTIONS = [
    *[({"delay": delay}, InvalidDelayError, ACCEPTED_DELAYS) for delay in BAD_DELAYS],
    *[({"meta": meta}, InvalidOptionError, "meta") for meta in BAD_META],
    *[
        ({"max_attempts": max_attempts}, InvalidOptionError, "max_attempts")
        for max_attempts in [0, -1, 1.5, True, "3"]
    ],
    *[
        ({"dedupe_key": key}, InvalidOptionError, "dedupe_key")
        for key in ["", 42, None]
    ],
    ({"queue": "lwo"}, UnknownQueueError, "'low', 'high', 'crash'"),
    ({"session": object()}, InvalidOptionError, "session"),
    ({"session": {"at": {1, 2}}}, InvalidOptionError, "session['at']"),
    ({"dely": "1s"}, InvalidOptionError, "unknown dispatch option 'dely'"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_OPTIONS)
def test_bad_options_publish_nothing_and_lock_nothing(
    client: Any,
    app: ModuleType,
    rdb: redis.Redis,
    published: list[str],
    tag: str,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Each bad option raises a ValueError naming the problem, before any effect."""
    with pytest.raises(error, match=re.escape(message)) as raised:
        client.dispatch(app.probe, {"tag": tag}, **{"dedupe_key": tag, **options})

    assert isinstance(raised.value, ValueError)
    assert published == []
    assert rdb.exists(lock_key("probe", tag)) == 0
    assert rdb.exists("lwo") == 0
