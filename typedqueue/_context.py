"""What a handler learns about the job it is running."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobContext:
    """The second argument of every handler.

    ``attempt`` starts at 1 and reaches ``max_attempts`` on the last try.
    ``session`` is the session captured at dispatch, also returned by
    :func:`typedqueue.get_session` while the handler runs.
    """

    job_id: str
    name: str
    queue: str
    attempt: int
    max_attempts: int
    meta: Mapping[str, Any]
    session: Any

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure now fails the job for good."""
        return self.attempt >= self.max_attempts
