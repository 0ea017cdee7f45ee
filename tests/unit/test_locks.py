"""The in-process lock store behaves as the Redis one does."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from typedqueue._locks import KEY_PREFIX, MemoryLockStore, lock_key


def test_second_taker_learns_the_holder() -> None:
    """A taken key returns the holder's token; a free one returns None."""
    locks = MemoryLockStore()

    assert locks.acquire("k", "a", 10_000) is None
    assert locks.acquire("k", "b", 10_000) == "a"


def test_release_is_compare_and_delete() -> None:
    """Only the holder's token frees the key."""
    locks = MemoryLockStore()
    locks.acquire("k", "a", 10_000)

    assert not locks.release("k", "b")
    assert locks.acquire("k", "b", 10_000) == "a"
    assert locks.release("k", "a")
    assert locks.acquire("k", "b", 10_000) is None


def test_expired_lock_can_be_taken_and_is_not_freed_by_its_old_holder() -> None:
    """After the TTL a new job takes the key; the old job cannot release it."""
    locks = MemoryLockStore()
    locks.acquire("k", "a", 1)
    time.sleep(0.01)

    assert locks.acquire("k", "b", 10_000) is None
    assert not locks.release("k", "a")
    assert locks.acquire("k", "c", 10_000) == "b"


def test_lock_keys_cannot_collide_across_jobs() -> None:
    """Colons in names and keys never make two pairs share a lock key."""
    assert lock_key("a:b", "c") != lock_key("a", "b:c")
    assert lock_key("a", "b") == "typedqueue:dedupe:1:a:b"


@given(
    first=st.tuples(st.text(min_size=1), st.text(min_size=1)),
    second=st.tuples(st.text(min_size=1), st.text(min_size=1)),
)
def test_lock_keys_are_distinct_and_namespaced(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    """Distinct (job, key) pairs never share a lock key, and all keep the prefix."""
    assert lock_key(*first).startswith(KEY_PREFIX)
    assert (lock_key(*first) == lock_key(*second)) == (first == second)
