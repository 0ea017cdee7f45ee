"""Faults that lose or repeat work on Celery with Redis, survived on real processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.integration.conftest import RedisServer, Runs, Worker, outcome
from typedqueue import DispatchError, QueueRuntime
from typedqueue._locks import lock_key


@pytest.fixture
def vt_app(app: Any) -> Any:
    from tests.integration import vt_app

    return vt_app


def _vt_worker(spawn_worker: Callable[..., Worker], pool: str = "solo") -> Worker:
    return spawn_worker("vt", pool=pool, app="tests.integration.vt_app")


def test_slow_handler_starts_once(
    vt_app: Any, spawn_worker: Callable[..., Worker], runs: Runs, tag: str
) -> None:
    """A handler running past the visibility timeout, with two workers, starts once."""
    workers = [_vt_worker(spawn_worker) for _ in range(2)]
    client = vt_app.runtime.create_client()

    result = client.dispatch(vt_app.vt_slow, {"tag": tag, "seconds": 5})

    assert outcome(vt_app, result.job_id, timeout_s=30).state == "SUCCESS"
    # Copies restored while it ran are still making their last rounds.
    time.sleep(3)
    assert len(runs.of(tag)) == 1
    assert any("already running elsewhere" in w.output() for w in workers)
    # Claimed half a visibility timeout after it was sent, then marked done.
    done = redis.Redis.from_url(vt_app.runtime.redis_url)
    assert done.get(f"typedqueue:run:{result.job_id}:1") == b"done"


def test_copies_of_a_retry_keep_their_attempt(
    vt_app: Any, spawn_worker: Callable[..., Worker], runs: Runs, tag: str
) -> None:
    """Copies of a slow second attempt are sent back as attempt 2, never 1."""
    for _ in range(2):
        _vt_worker(spawn_worker)
    client = vt_app.runtime.create_client()

    result = client.dispatch(vt_app.vt_slow_retry, {"tag": tag, "seconds": 4})

    assert outcome(vt_app, result.job_id, timeout_s=30).state == "SUCCESS"
    time.sleep(3)  # room for a wrongly numbered copy to run
    assert [run["ctx"].attempt for run in runs.of(tag)] == [1, 2]


def test_quick_job_takes_no_claim(
    client: Any, app: Any, rdb: redis.Redis, runs: Runs, tag: str
) -> None:
    """A job done long before any copy could exist costs no claim in Redis."""
    result = client.dispatch(app.probe, {"tag": tag})

    assert outcome(app, result.job_id).state == "SUCCESS"
    assert rdb.exists(f"typedqueue:run:{result.job_id}:1") == 0


def test_killed_worker_job_runs_again_and_frees_its_lock(
    vt_app: Any,
    spawn_worker: Callable[..., Worker],
    rdb: redis.Redis,
    runs: Runs,
    tag: str,
) -> None:
    """SIGKILL mid-job: the job is delivered again, succeeds, and frees its key."""
    doomed = _vt_worker(spawn_worker, pool="prefork")
    client = vt_app.runtime.create_client()
    result = client.dispatch(vt_app.vt_crash_once, {"tag": tag}, dedupe_key=tag)
    runs.wait(tag, 1)
    doomed.kill()

    _vt_worker(spawn_worker)

    assert outcome(vt_app, result.job_id, timeout_s=30).state == "SUCCESS"
    assert [run["ctx"].job_id for run in runs.of(tag)] == [result.job_id] * 2
    assert rdb.exists(lock_key("vt_crash_once", tag)) == 0


def _runtime_on(server: RedisServer, app: Any) -> tuple[Any, Any]:
    """A producer on ``server`` with the test app's probe job; its client and job."""
    runtime = QueueRuntime(queues=("low",), broker_url=server.url, redis_url=server.url)
    return runtime.create_client(), runtime.job("probe")(app.run_probe)


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_dispatch_fails_fast_while_redis_is_down(
    app: Any, own_redis: RedisServer, fault: str, tag: str
) -> None:
    """Down or hung, Redis makes dispatch fail within the stated 9 s; then it works."""
    client, probe = _runtime_on(own_redis, app)
    client.dispatch(probe, {"tag": "warm-up"})
    own_redis.stop() if fault == "stopped" else own_redis.pause()

    advice = "outcome is unknown" if fault == "frozen" else "nothing was published"
    for options in ({}, {"dedupe_key": tag}):
        started = time.monotonic()
        with pytest.raises(DispatchError, match=advice):
            client.dispatch(probe, {"tag": tag}, **options)
        # The bound the README states, with room for a loaded machine.
        assert time.monotonic() - started < 9 + 3

    own_redis.start() if fault == "stopped" else own_redis.resume()
    server = redis.Redis.from_url(own_redis.url)
    queued = server.llen("low")
    # A fresh key: the frozen dispatch's own lock may have landed on wake-up.
    result = client.dispatch(probe, {"tag": tag}, dedupe_key=f"{tag}-after")

    assert not result.deduplicated
    assert server.llen("low") == queued + 1
    assert server.get(lock_key("probe", f"{tag}-after")) is not None


def test_worker_survives_a_redis_restart(
    app: Any,
    own_redis: RedisServer,
    spawn_worker: Callable[..., Worker],
    runs: Runs,
    tag: str,
) -> None:
    """Redis restarts under a running worker; jobs dispatched afterwards run."""
    env = {
        "TYPEDQUEUE_BROKER_URL": own_redis.url,
        "TYPEDQUEUE_REDIS_URL": own_redis.url,
    }
    spawn_worker("low", env=env)
    client, probe = _runtime_on(own_redis, app)
    client.dispatch(probe, {"tag": f"{tag}-before"})
    runs.wait(f"{tag}-before", 1)

    own_redis.stop()
    own_redis.start()
    client.dispatch(probe, {"tag": f"{tag}-after"})

    runs.wait(f"{tag}-after", 1, timeout_s=60)
