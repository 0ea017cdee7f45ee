"""Dedupe locks on a real Redis server, attacked with real workers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.conftest import Runs, Worker, outcome, wait_for
from typedqueue import DispatchError, QueueRuntime
from typedqueue._envelope import parse_lock_token
from typedqueue._locks import lock_key


def _holder(rdb: redis.Redis, job: str, key: str) -> str | None:
    """The job id holding a dedupe key, or None when the key is free."""
    token = rdb.get(lock_key(job, key))
    return None if token is None else parse_lock_token(token.decode())[0]


def test_concurrent_duplicates_publish_once(
    client: Any,
    app: ModuleType,
    runs: Runs,
    tag: str,
    spawn_worker: Callable[..., Worker],
    published: list[str],
) -> None:
    """20 threads dispatch one key at once: one new job, 19 pointing at it, 1 run."""
    barrier = threading.Barrier(20)
    results: list[Any] = []

    def dispatch() -> None:
        barrier.wait()
        results.append(
            client.dispatch(app.probe, {"tag": tag}, queue="high", dedupe_key=tag)
        )

    threads = [threading.Thread(target=dispatch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [new] = [result for result in results if not result.deduplicated]
    duplicates = [result for result in results if result.deduplicated]
    assert len(duplicates) == 19
    assert {result.job_id for result in duplicates} == {new.job_id}
    assert {result.queue for result in duplicates} == {"high"}
    assert published == [new.job_id]

    spawn_worker("high")
    outcome(app, new.job_id)
    assert len(runs.of(tag)) == 1


def test_lock_released_after_final_failure(
    client: Any, app: ModuleType, rdb: redis.Redis, runs: Runs, tag: str
) -> None:
    """Once the job has finally failed its key is free: a new dispatch runs."""
    first = client.dispatch(app.probe, {"tag": tag, "fail_until": 99}, dedupe_key=tag)
    assert outcome(app, first.job_id).state == "FAILURE"
    assert _holder(rdb, "probe", tag) is None

    second = client.dispatch(app.probe, {"tag": tag}, dedupe_key=tag)

    assert not second.deduplicated
    assert second.job_id != first.job_id
    assert outcome(app, second.job_id).state == "SUCCESS"
    assert [run["ctx"].job_id for run in runs.of(tag)] == [first.job_id, second.job_id]


def test_lock_held_across_retries(
    client: Any, app: ModuleType, rdb: redis.Redis, runs: Runs, tag: str
) -> None:
    """Between attempts the key stays taken; after success it is free."""
    first = client.dispatch(
        app.probe_slow_retry,
        {"tag": tag, "fail_until": 2},
        max_attempts=3,
        dedupe_key=tag,
    )
    runs.wait(tag, 1)

    during_retry = client.dispatch(app.probe_slow_retry, {"tag": tag}, dedupe_key=tag)

    assert during_retry.deduplicated
    assert during_retry.job_id == first.job_id
    assert outcome(app, first.job_id).state == "SUCCESS"
    assert [run["ctx"].attempt for run in runs.of(tag)] == [1, 2, 3]
    assert _holder(rdb, "probe_slow_retry", tag) is None


def test_finishing_job_leaves_a_newer_lock_alone(
    client: Any, app: ModuleType, rdb: redis.Redis, runs: Runs, tag: str
) -> None:
    """A's lock expires and B takes the key; A finishing keeps B's lock in place."""
    a_tag, b_tag = f"{tag}-a", f"{tag}-b"
    try:
        a = client.dispatch(
            app.probe_short_lock, {"tag": a_tag, "gate": True}, dedupe_key=tag
        )
        runs.wait(a_tag, 1)
        wait_for(
            lambda: _holder(rdb, "probe_short_lock", tag) is None,
            what="A's lock to expire",
        )
        b = client.dispatch(
            app.probe_short_lock, {"tag": b_tag, "gate": True}, dedupe_key=tag
        )
        assert not b.deduplicated

        runs.open_gate(a_tag)
        assert outcome(app, a.job_id).state == "SUCCESS"

        assert _holder(rdb, "probe_short_lock", tag) == b.job_id
    finally:
        runs.open_gate(a_tag)
        runs.open_gate(b_tag)


def test_crashed_holder_keeps_the_key_until_its_ttl(
    client: Any,
    app: ModuleType,
    rdb: redis.Redis,
    runs: Runs,
    tag: str,
    spawn_worker: Callable[..., Worker],
) -> None:
    """A worker killed mid-job keeps its key until the TTL; then a new job runs."""
    doomed = spawn_worker("crash")
    first = client.dispatch(
        app.probe_short_lock, {"tag": tag, "gate": True}, queue="crash", dedupe_key=tag
    )
    runs.wait(tag, 1)
    doomed.kill()

    again = client.dispatch(app.probe_short_lock, {"tag": tag}, dedupe_key=tag)
    assert again.deduplicated
    assert again.job_id == first.job_id

    wait_for(
        lambda: _holder(rdb, "probe_short_lock", tag) is None,
        what="the crashed job's lock to expire",
    )
    fresh = client.dispatch(
        app.probe_short_lock, {"tag": tag}, queue="crash", dedupe_key=tag
    )
    assert not fresh.deduplicated
    assert fresh.job_id != first.job_id

    spawn_worker("crash")
    runs.wait(tag, 2)
    assert runs.of(tag)[1]["ctx"].job_id == fresh.job_id


def test_same_key_on_other_jobs_does_not_collide(
    client: Any, app: ModuleType, tag: str
) -> None:
    """A dedupe key is scoped to its job: two jobs may hold the same key."""
    first = client.dispatch(app.probe, {"tag": tag}, queue="high", dedupe_key=tag)
    second = client.dispatch(
        app.probe_slow_retry, {"tag": tag}, queue="high", dedupe_key=tag
    )

    assert not first.deduplicated
    assert not second.deduplicated


def test_failed_publish_leaves_no_lock(
    app: ModuleType, rdb: redis.Redis, redis_url: str, tag: str
) -> None:
    """With the broker down, dispatch raises DispatchError and frees the key."""
    runtime = QueueRuntime(
        queues=("low",), broker_url="redis://127.0.0.1:1/0", redis_url=redis_url
    )
    job = runtime.job("probe_down")(app.run_probe)
    client = runtime.create_client()

    with pytest.raises(DispatchError, match="nothing was published"):
        client.dispatch(job, {"tag": tag}, dedupe_key=tag)

    assert _holder(rdb, "probe_down", tag) is None
