"""The current auth session, carried from the dispatching code to the handler.

The session lives in a context variable. At dispatch its value is captured
into the message; in the worker it is set around the handler and reset right
after, so one job's session can never be seen by the next job a worker
process runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_current: ContextVar[Any] = ContextVar("typedqueue_session", default=None)


def get_session() -> Any:
    """Return the current session, or ``None`` when there is none.

    Inside a handler this is the session captured when the job was dispatched.
    """
    return _current.get()


def set_session(session: Any) -> None:
    """Make ``session`` the current session of this context.

    Later dispatches from this context capture it. ``set_session(None)``
    clears it. To set it for a block only, use :func:`session_scope`.
    """
    _current.set(session)


@contextmanager
def session_scope(session: Any) -> Iterator[None]:
    """Make ``session`` current inside the ``with`` block, then restore the old one."""
    token = _current.set(session)
    try:
        yield
    finally:
        _current.reset(token)
