"""One handler start per attempt, however often the broker delivers it.

Redis redelivers a message that stays unacknowledged past the visibility
timeout: a long-running job, a job whose worker was killed, a message that
waited in a busy worker. Every copy would run the handler. Before running,
an attempt therefore claims ``typedqueue:run:<job id>:<attempt>`` with a
short lease that a background thread renews while the handler runs. A copy
that finds the lease held goes back to the queue until the holder finishes
(the claim then says done and the copy is dropped) or dies (the lease lapses
and the copy runs in its place).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Final

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "typedqueue:run:"
DONE: Final = "done"

# Returns nothing when the claim was taken, else the value and its TTL.
_CLAIM: Final = """
local value = redis.call('get', KEYS[1])
if not value then
    redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return false
end
return {value, redis.call('pttl', KEYS[1])}
"""

_RENEW: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Busy:
    """Another execution holds the attempt; retry after ``wait_ms``."""

    wait_ms: int


class Guard:
    """Claims attempts in Redis and keeps the claims of running ones alive."""

    def __init__(self, client: redis.Redis, lease_s: float, done_ttl_s: float) -> None:
        self.lease_ms = max(1, int(lease_s * 1000))
        self.done_ttl_ms = max(1, int(done_ttl_s * 1000))
        self._client = client
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, str] = {}
        self._mutex = threading.Lock()
        self._renewer_pid: int | None = None
        self._wake = threading.Event()

    def claim(self, job_id: str, attempt: int) -> str | Busy | None:
        """Claim an attempt: its key, ``Busy``, or ``None`` if already done."""
        key = f"{KEY_PREFIX}{job_id}:{attempt}"
        token = uuid.uuid4().hex
        held = self._claim(keys=[key], args=[token, self.lease_ms])
        if held:
            value, ttl_ms = held
            if value == DONE.encode():
                return None
            return Busy(wait_ms=max(int(ttl_ms), 100))

        with self._mutex:
            self._held[key] = token
        self._ensure_renewer()
        return key

    def finish(self, key: str) -> None:
        """Mark a claimed attempt done, so late copies of it are dropped."""
        with self._mutex:
            self._held.pop(key, None)
        self._client.set(key, DONE, px=self.done_ttl_ms)

    def _ensure_renewer(self) -> None:
        # After a fork the renewer thread stays behind in the parent.
        if self._renewer_pid == os.getpid():
            return
        self._renewer_pid = os.getpid()
        threading.Thread(
            target=self._renew_forever, name="typedqueue-lease", daemon=True
        ).start()

    def _renew_forever(self) -> None:
        while not self._wake.wait(self.lease_ms / 3000):
            with self._mutex:
                held = list(self._held.items())
            for key, token in held:
                try:
                    self._renew(keys=[key], args=[token, self.lease_ms])
                except redis.RedisError as exc:
                    logger.warning("Could not renew the lease %s: %s", key, exc)
