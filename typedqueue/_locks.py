"""Dedupe locks: one pending or running job per job name and dedupe key.

A lock's value is a token naming the job that holds it. Taking a lock and
reading the holder is one atomic step, so of many concurrent dispatches
exactly one takes the lock and every other one learns who holds it. Release
deletes the lock only while it still holds the releasing job's token: once a
lock has expired and another job has taken the key, the first job finishing
must not free the second job's lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Final, Protocol

import redis

KEY_PREFIX: Final = "typedqueue:dedupe:"

# Returns nothing when the lock was taken, else the holder's token.
_ACQUIRE: Final = """
local holder = redis.call('get', KEYS[1])
if holder then
    return holder
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def lock_key(job_name: str, dedupe_key: str) -> str:
    """The lock's key for a job name and a dedupe key.

    The name's length comes first, so no pair of name and key can spell the
    same lock key as another pair, whatever colons either contains.
    """
    return f"{KEY_PREFIX}{len(job_name)}:{job_name}:{dedupe_key}"


class LockStore(Protocol):
    """Where dedupe locks live."""

    def acquire(self, key: str, token: str, ttl_ms: int) -> str | None:
        """Take ``key`` for ``ttl_ms``; return ``None``, or the holder's token."""
        ...

    def release(self, key: str, token: str) -> bool:
        """Delete ``key`` if ``token`` holds it; return whether it did."""
        ...

    def acquire_many(self, locks: Sequence[tuple[str, str, int]]) -> list[str | None]:
        """:meth:`acquire` for each (key, token, ttl_ms), in order."""
        ...

    def release_many(self, locks: Sequence[tuple[str, str]]) -> None:
        """:meth:`release` for each (key, token)."""
        ...


class RedisLockStore:
    """Locks in Redis, shared by every producer and worker using that server."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    def acquire(self, key: str, token: str, ttl_ms: int) -> str | None:
        # A plain SET takes a free key in one round trip, as cheap as Redis
        # gets; only a taken key needs the script, to read its holder even if
        # it is released meanwhile.
        if self.client.set(key, token, nx=True, px=ttl_ms):
            return None
        return _text(self._acquire(keys=[key], args=[token, ttl_ms]))

    def release(self, key: str, token: str) -> bool:
        return bool(self._release(keys=[key], args=[token]))

    def acquire_many(self, locks: Sequence[tuple[str, str, int]]) -> list[str | None]:
        # One round trip; Redis runs the scripts in order, so a key that
        # appears twice is taken by the first and reported held to the second.
        pipe = self.client.pipeline(transaction=False)
        for key, token, ttl_ms in locks:
            self._acquire(keys=[key], args=[token, ttl_ms], client=pipe)
        return [_text(holder) for holder in pipe.execute()]

    def release_many(self, locks: Sequence[tuple[str, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, token in locks:
            self._release(keys=[key], args=[token], client=pipe)
        pipe.execute()


class MemoryLockStore:
    """Locks in this process only, for the embedded runtime."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def acquire(self, key: str, token: str, ttl_ms: int) -> str | None:
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return held[0]
            self._locks[key] = (token, now + ttl_ms / 1000)
            return None

    def release(self, key: str, token: str) -> bool:
        with self._mutex:
            held = self._locks.get(key)
            if held is None or held[0] != token:
                return False
            del self._locks[key]
            return True

    def acquire_many(self, locks: Sequence[tuple[str, str, int]]) -> list[str | None]:
        return [self.acquire(*lock) for lock in locks]

    def release_many(self, locks: Sequence[tuple[str, str]]) -> None:
        for lock in locks:
            self.release(*lock)


def _text(holder: object) -> str | None:
    if holder is None:
        return None
    return holder.decode() if isinstance(holder, bytes) else str(holder)
