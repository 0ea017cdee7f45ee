"""Property tests: no input makes dispatch fail unexpectedly, or leave traces."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import ModuleType
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from typedqueue import TypedQueueError
from typedqueue._locks import lock_key

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.builds(pow, st.just(10), st.just(5000)),  # beyond what int() prints
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.builds(object),
    st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400)),
    st.sets(st.integers(), max_size=2),
)
JSONISH = st.recursive(
    ODD,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers()), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
PAYLOADS = st.one_of(
    JSONISH,
    st.fixed_dictionaries(
        {"tag": st.one_of(st.text(max_size=10), ODD)},
        optional={"fail_until": ODD, "gate": ODD, "extra": ODD},
    ),
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "delay": st.one_of(
            ODD,
            st.from_regex(
                r"-?[0-9]{0,6}(\.[0-9]{0,3})?\s?(ms|s|m|h|d|x|)", fullmatch=True
            ),
        ),
        "queue": st.one_of(st.sampled_from(["high", "crash", "lwo", "", "HIGH"]), ODD),
        "max_attempts": st.one_of(st.integers(min_value=-5, max_value=20_000), ODD),
        "meta": JSONISH,
        "session": JSONISH,
        "dedupe_key": st.one_of(st.text(max_size=30), ODD),
        "dely": ODD,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=PAYLOADS, options=OPTIONS)
def test_dispatch_raises_only_its_own_errors(
    client: Any,
    app: ModuleType,
    rdb: redis.Redis,
    payload: Any,
    options: dict[str, Any],
) -> None:
    """Any input is dispatched, or refused with a typedqueue or pydantic error.

    When refused, the broker's queues and Redis hold nothing new from it.
    """
    options = {"queue": "high", **options}
    key = options.setdefault("dedupe_key", uuid.uuid4().hex)
    queued = {queue: rdb.llen(queue) for queue in ("high", "crash")}

    try:
        result = client.dispatch(app.probe, payload, **options)
    except (TypedQueueError, ValidationError):
        assert {queue: rdb.llen(queue) for queue in ("high", "crash")} == queued
        if isinstance(key, str) and key.isprintable():
            assert rdb.exists(lock_key("probe", key)) == 0
        return

    # Accepted: the message is in its queue, under the lock it took.
    assert rdb.llen(result.queue) == queued[result.queue] + 1
    rdb.delete(lock_key("probe", key), result.queue)


@settings(max_examples=50, deadline=None)
@given(key=st.text(min_size=1, max_size=200).filter(str.isprintable))
def test_any_printable_dedupe_key_works_per_job(
    app: ModuleType, worker: Any, rdb: redis.Redis, key: str
) -> None:
    """Unicode, spaces and colons: a key dedupes its own job and no other."""
    client = app.runtime.create_client()
    first = client.dispatch(app.probe, {"tag": "k"}, queue="high", dedupe_key=key)
    again = client.dispatch(app.probe, {"tag": "k"}, queue="high", dedupe_key=key)
    other_job = client.dispatch(
        app.probe_slow_retry, {"tag": "k"}, queue="high", dedupe_key=key
    )

    assert (again.deduplicated, again.job_id) == (True, first.job_id)
    assert not other_job.deduplicated
    rdb.delete(lock_key("probe", key), lock_key("probe_slow_retry", key), "high")
