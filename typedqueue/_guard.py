"""One handler start per attempt, however often the broker delivers it.

Redis hands a message out again once it has stayed unacknowledged past the
visibility timeout: a long-running job, a job whose worker was killed, a
message that waited in a busy worker. Every copy would run the handler.
An attempt is therefore claimed under ``typedqueue:run:<job id>:<attempt>``
with a short lease that a background thread renews while the handler runs.
A copy that finds the lease held goes back to the queue until the holder
finishes (the claim then says done and the copy is dropped) or dies (the
lease lapses and the copy runs in its place).

A copy can only exist once a message has been out for a visibility timeout.
A first delivery published less than half that long ago therefore starts
without a round trip to Redis; its claim is taken by the background thread
only if it is still running at that half-way mark, well before any copy can
be made. Most jobs finish sooner and never touch Redis for their claim.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Final

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "typedqueue:run:"
DONE: Final = b"done"

_RENEW: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True)
class Busy:
    """Another execution holds the attempt; look again after ``wait_ms``."""

    wait_ms: int


@dataclass
class Claim:
    """An attempt this process runs; ``claim_at_ms`` until its key is taken."""

    key: str
    token: str
    claim_at_ms: int | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class Guard:
    """Claims attempts in Redis and keeps the claims of running ones alive."""

    def __init__(
        self,
        client: redis.Redis,
        lease_s: float,
        visibility_timeout_s: float,
    ) -> None:
        self.lease_ms = max(1, int(lease_s * 1000))
        self.safe_ms = int(visibility_timeout_s * 1000 / 2)
        # A copy can surface until a visibility timeout after the attempt
        # ended; until then "done" must still be known.
        self.done_ttl_ms = int(visibility_timeout_s * 1000) + 60_000
        self._period_s = max(0.05, min(self.lease_ms / 3, self.safe_ms / 4) / 1000)
        self._client = client
        self._renew = client.register_script(_RENEW)
        self._running: dict[str, Claim] = {}
        self._mutex = threading.Lock()
        self._renewer_pid: int | None = None

    def begin(
        self, job_id: str, attempt: int, sent_ms: int | None, suspect: bool
    ) -> Claim | Busy | None:
        """Claim an attempt: the claim, ``Busy``, or ``None`` if it already ran.

        ``suspect`` marks a message that may be a copy (redelivered or sent
        back); ``sent_ms`` is when the message was published.
        """
        claim = Claim(key=f"{KEY_PREFIX}{job_id}:{attempt}", token=uuid.uuid4().hex)
        fresh = sent_ms is not None and _now_ms() - sent_ms < self.safe_ms
        if fresh and not suspect:
            assert sent_ms is not None
            claim.claim_at_ms = sent_ms + self.safe_ms
        elif not self._take(claim):
            held = self._client.get(claim.key)
            if held == DONE:
                return None
            if held is not None:
                wait_ms = int(self._client.pttl(claim.key))
                return Busy(wait_ms=max(wait_ms, 100))
            if not self._take(claim):  # the holder finished just now
                return None

        with self._mutex:
            self._running[claim.key] = claim
        self._ensure_renewer()
        return claim

    def finish(self, claim: Claim) -> None:
        """End a claimed attempt, so late copies of it are dropped."""
        with self._mutex:
            self._running.pop(claim.key, None)
            taken = claim.claim_at_ms is None
        if taken:
            self._client.set(claim.key, DONE, px=self.done_ttl_ms)

    def abandon(self, claim: Claim) -> None:
        """Stop keeping a claim alive, as if this worker had died."""
        with self._mutex:
            self._running.pop(claim.key, None)

    def _take(self, claim: Claim) -> bool:
        taken = self._client.set(claim.key, claim.token, nx=True, px=self.lease_ms)
        return bool(taken)

    def _ensure_renewer(self) -> None:
        with self._mutex:
            # After a fork the renewer thread stays behind in the parent.
            if self._renewer_pid == os.getpid():
                return
            self._renewer_pid = os.getpid()
        threading.Thread(
            target=self._renew_forever, name="typedqueue-lease", daemon=True
        ).start()

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self._period_s)
            with self._mutex:
                running = list(self._running.values())
            for claim in running:
                try:
                    self._keep(claim)
                except redis.RedisError as exc:
                    logger.warning("Could not renew the claim %s: %s", claim.key, exc)

    def _keep(self, claim: Claim) -> None:
        if claim.claim_at_ms is None:
            if not self._renew(keys=[claim.key], args=[claim.token, self.lease_ms]):
                logger.error(
                    "Lost the claim %s while its attempt runs (Redis stalled "
                    "past the lease?); another worker may run it too",
                    claim.key,
                )
        elif _now_ms() >= claim.claim_at_ms:
            if not self._take(claim):
                logger.warning("The claim %s was taken by another worker", claim.key)
            with self._mutex:
                claim.claim_at_ms = None
                ended = claim.key not in self._running
            if ended:
                # finish() ran while the claim was being taken.
                self._client.set(claim.key, DONE, px=self.done_ttl_ms)
