"""Bulk dispatch: same checks and guarantees as dispatch, in one round trip."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from tests.integration.conftest import RedisServer, Runs
from typedqueue import DispatchError, InvalidOptionError, QueueRuntime
from typedqueue._locks import lock_key


def test_results_in_order_and_every_job_runs(
    client: Any, app: ModuleType, runs: Runs, tag: str, published: list[str]
) -> None:
    """Each payload becomes a job, in order, and runs with the shared options."""
    tags = [f"{tag}-{index}" for index in range(20)]

    results = client.dispatch_many(
        app.probe, [{"tag": item} for item in tags], max_attempts=2, meta={"m": 1}
    )

    assert [result.deduplicated for result in results] == [False] * 20
    assert published == [result.job_id for result in results]
    for item, result in zip(tags, results, strict=True):
        [run] = runs.wait(item, 1)
        assert run["ctx"].job_id == result.job_id
        assert (run["ctx"].max_attempts, run["ctx"].meta) == (2, {"m": 1})


def test_per_item_dedupe_keys(
    client: Any, app: ModuleType, rdb: redis.Redis, tag: str, high: str
) -> None:
    """Keys dedupe within the batch and against jobs already pending."""
    earlier = client.dispatch(
        app.probe, {"tag": tag}, queue=high, dedupe_key=f"{tag}-a"
    )

    results = client.dispatch_many(
        app.probe,
        [{"tag": tag}] * 4,
        queue=high,
        dedupe_keys=[f"{tag}-a", f"{tag}-b", f"{tag}-b", None],
    )

    assert [r.deduplicated for r in results] == [True, False, True, False]
    assert results[0].job_id == earlier.job_id
    assert results[2].job_id == results[1].job_id
    queued = [json.loads(raw)["headers"]["id"] for raw in rdb.lrange(high, 0, -1)]
    assert sorted(queued) == sorted(
        [earlier.job_id, results[1].job_id, results[3].job_id]
    )


def test_nothing_new_to_publish(
    client: Any, app: ModuleType, tag: str, high: str, published: list[str]
) -> None:
    """An empty batch, or one whose every key is held, publishes nothing."""
    keys = [f"{tag}-1", f"{tag}-2"]
    first = client.dispatch_many(
        app.probe, [{"tag": tag}] * 2, queue=high, dedupe_keys=keys
    )
    published.clear()

    again = client.dispatch_many(
        app.probe, [{"tag": tag}] * 2, queue=high, dedupe_keys=keys
    )

    assert client.dispatch_many(app.probe, []) == []
    assert [r.job_id for r in again] == [r.job_id for r in first]
    assert all(r.deduplicated for r in again)
    assert published == []


def test_one_error_names_every_bad_payload(
    client: Any, app: ModuleType, rdb: redis.Redis, tag: str, published: list[str]
) -> None:
    """Bad payloads at 1 and 3 raise one ValidationError; nothing is sent or locked."""
    payloads = [{"tag": tag}, {"tag": 5}, {"tag": tag}, {"fail_until": "x"}]

    with pytest.raises(ValidationError) as raised:
        client.dispatch_many(app.probe, payloads, dedupe_keys=[tag, None, None, None])

    locations = [error["loc"] for error in raised.value.errors()]
    assert locations == [(1, "tag"), (3, "tag"), (3, "fail_until")]
    assert published == []
    assert rdb.exists(lock_key("probe", tag)) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dedupe_key": "k"}, "takes dedupe_keys="),
        ({"dedupe_keys": ["a"]}, "has 1 for 2 payloads"),
        ({"dedupe_keys": ["a", ""]}, r"dedupe_keys\[1\]: invalid dedupe_key ''"),
        ({"delay": "5x"}, "invalid delay"),
    ],
)
def test_bad_options_publish_nothing(
    client: Any, app: ModuleType, published: list[str], options: Any, message: str
) -> None:
    """Options are checked before anything is published."""
    with pytest.raises(InvalidOptionError, match=message):
        client.dispatch_many(app.probe, [{"tag": "a"}, {"tag": "b"}], **options)

    assert published == []


def test_broker_down_releases_every_lock(
    app: ModuleType, own_redis: RedisServer, redis_url: str, tag: str
) -> None:
    """If publishing fails, the batch's locks are released."""
    runtime = QueueRuntime(
        queues=("low",), broker_url=own_redis.url, redis_url=redis_url
    )
    job = runtime.job("probe_batch")(app.run_probe)
    own_redis.stop()

    with pytest.raises(DispatchError, match="nothing was published"):
        runtime.create_client().dispatch_many(
            job, [{"tag": tag}] * 3, dedupe_keys=[f"{tag}-1", f"{tag}-2", None]
        )

    locks = redis.Redis.from_url(redis_url)
    assert locks.exists(lock_key("probe_batch", f"{tag}-1")) == 0
    assert locks.exists(lock_key("probe_batch", f"{tag}-2")) == 0


def test_long_delay_in_bulk_hops(
    client: Any, app: ModuleType, rdb: redis.Redis, high: str
) -> None:
    """A bulk job delayed a day carries its due time, like a single dispatch."""
    [result] = client.dispatch_many(app.probe, [{"tag": "x"}], queue=high, delay="1d")

    [message] = [json.loads(raw) for raw in rdb.lrange(high, 0, -1)]
    assert message["headers"]["id"] == result.job_id
    assert "tq_due_ms" in message["headers"]
