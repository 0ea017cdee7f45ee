"""Exceptions raised by typedqueue.

Every error typedqueue raises derives from :class:`TypedQueueError`. A payload
that does not match its job's schema raises pydantic's own ``ValidationError``
instead, so the field-by-field report stays the one pydantic users know.
"""

from __future__ import annotations


class TypedQueueError(Exception):
    """Base class of every error typedqueue raises."""


class ConfigurationError(TypedQueueError):
    """Raised when a runtime or a job is declared with settings that cannot work."""


class InvalidOptionError(TypedQueueError, ValueError):
    """Raised when a dispatch option has a value typedqueue cannot use."""


class InvalidDelayError(InvalidOptionError):
    """Raised when ``delay`` is not one of the accepted forms."""


class InvalidPayloadError(TypedQueueError, ValueError):
    """Raised when a payload passed validation but has no JSON form to send."""


class UnknownQueueError(InvalidOptionError):
    """Raised when ``queue`` names a queue the runtime did not declare."""


class UnknownJobError(TypedQueueError, LookupError):
    """Raised when a job is dispatched through a runtime that does not own it."""


class DispatchError(TypedQueueError):
    """Raised when the broker did not accept a job; nothing was published."""


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: short, and never raising itself."""
    try:
        text = repr(value)
    except Exception:
        # Some values cannot be printed: an int of over 4,300 digits, say.
        text = f"<{type(value).__name__} that cannot be printed>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
