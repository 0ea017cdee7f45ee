"""How long a failed job waits before its next attempt."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from typedqueue._errors import ConfigurationError, shown


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between attempts of one job.

    The wait after attempt ``n`` is ``first_s * 2 ** (n - 1)``, capped at
    ``max_s``. With ``jitter`` each wait is drawn from its upper half, so
    jobs that failed together do not all come back at the same moment.
    """

    first_s: float = 1.0
    max_s: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        for field, value in (("first_s", self.first_s), ("max_s", self.max_s)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"invalid Backoff {field} {shown(value)}: use a finite number "
                    "of seconds, 0 or more"
                )
        if self.max_s < self.first_s:
            raise ConfigurationError(
                f"invalid Backoff: max_s {shown(self.max_s)} is below "
                f"first_s {shown(self.first_s)}; raise max_s or lower first_s"
            )

    def ceiling_s(self, attempt: int) -> float:
        """The longest wait after ``attempt`` (1-based) failed."""
        # min() before the power would overflow for very late attempts.
        doublings = min(attempt - 1, 64)
        return float(min(self.max_s, self.first_s * 2**doublings))

    def wait_s(self, attempt: int) -> float:
        """The wait after ``attempt`` failed, jittered when ``jitter`` is on."""
        ceiling = self.ceiling_s(attempt)
        if not self.jitter:
            return ceiling
        return random.uniform(ceiling / 2, ceiling)

    def total_ceiling_s(self, max_attempts: int) -> float:
        """The longest time a job can spend waiting between all its attempts."""
        # Past 64 doublings every wait is the same, so the tail is a product.
        waits = max_attempts - 1
        head = min(waits, 65)
        tail = waits - head
        head_s = sum(self.ceiling_s(n) for n in range(1, head + 1))
        return head_s + tail * self.ceiling_s(head + 1)
