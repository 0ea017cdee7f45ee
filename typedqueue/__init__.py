"""Typed background jobs over Celery.

Declare a job once, with a pydantic model or a TypedDict as its input, and
dispatch it through a client: the payload and the queue are checked by type
checkers before the code runs and by pydantic before anything is published.
"""

from typedqueue._backoff import Backoff
from typedqueue._client import Client, DispatchResult
from typedqueue._context import JobContext
from typedqueue._delay import Delay
from typedqueue._errors import (
    ConfigurationError,
    DispatchError,
    InvalidDelayError,
    InvalidOptionError,
    InvalidPayloadError,
    TypedQueueError,
    UnknownJobError,
    UnknownQueueError,
)
from typedqueue._job import Job
from typedqueue._options import DispatchOptions
from typedqueue._runtime import QueueRuntime
from typedqueue._session import get_session, session_scope, set_session

__all__ = [
    "Backoff",
    "Client",
    "ConfigurationError",
    "Delay",
    "DispatchError",
    "DispatchOptions",
    "DispatchResult",
    "InvalidDelayError",
    "InvalidOptionError",
    "InvalidPayloadError",
    "Job",
    "JobContext",
    "QueueRuntime",
    "TypedQueueError",
    "UnknownJobError",
    "UnknownQueueError",
    "get_session",
    "session_scope",
    "set_session",
]
