"""Dispatch options: their declared types and the checks run before publishing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Generic, TypeGuard, TypeVar

from typing_extensions import TypedDict

from typedqueue._delay import Delay
from typedqueue._errors import InvalidOptionError, shown

Q = TypeVar("Q", bound=str)

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


class DispatchOptions(TypedDict, Generic[Q], total=False):
    """Keyword options of :meth:`Client.dispatch`, also usable as ``**options``."""

    max_attempts: int
    """Total attempts, the first included, before the job is failed."""
    queue: Q
    """One of the runtime's declared queues."""
    delay: Delay
    """Time until the job is due: milliseconds, ``"30s"``-style, or a timedelta."""
    dedupe_key: str
    """No second job with this key (per job name) while one is pending or running."""
    meta: Mapping[str, Any]
    """JSON values handed to the handler as ``ctx.meta`` on every attempt."""
    session: Any
    """Overrides the captured session; ``False`` sends none."""


OPTION_NAMES: Final = frozenset(DispatchOptions.__annotations__)
MAX_ATTEMPTS_LIMIT: Final = 10_000
# Deeper JSON than this is a mistake (or a cycle), not meta.
MAX_JSON_DEPTH: Final = 64
# Python refuses to print longer ints, so the message could not be encoded.
MAX_INT_DIGITS: Final = 4000
_INT_LIMIT: Final = 10**MAX_INT_DIGITS


def check_option_names(options: Mapping[str, object]) -> None:
    """Refuse option names :class:`DispatchOptions` does not declare."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise InvalidOptionError(
            f"unknown dispatch option {shown(unknown[0])}; "
            f"the options are {', '.join(sorted(OPTION_NAMES))}"
        )


def is_whole(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int, and not the bool Python also counts as one."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_max_attempts(value: object) -> int:
    """Return ``value`` if it is a whole number of attempts, at least one."""
    if not is_whole(value) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise InvalidOptionError(
            f"invalid max_attempts {shown(value)}: use a whole number from 1 to "
            f"{MAX_ATTEMPTS_LIMIT} (it counts every attempt, the first included)"
        )
    return value


def check_dedupe_key(value: object) -> str:
    """Return ``value`` if it can serve as a dedupe key."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise InvalidOptionError(
            f"invalid dedupe_key {shown(value)}: use a non-empty string of printable "
            "characters, such as 'welcome:42'"
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidOptionError(
            f"invalid dedupe_key {shown(value)}: it holds a lone surrogate, which "
            "has no UTF-8 form; use a valid Unicode string"
        ) from None
    return value


def to_json(value: object, where: str, depth: int = 0) -> JsonValue:
    """Return a plain-JSON copy of ``value``, or say where it is not JSON.

    Checked at dispatch so that an unserializable value fails in the caller,
    not in the worker after the message was already published.
    """
    if depth > MAX_JSON_DEPTH:
        raise _not_json(
            where, "nested too deep", f"JSON here stops at {MAX_JSON_DEPTH} levels"
        )
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) >= _INT_LIMIT:
            raise _not_json(
                where, "a huge int", f"ints stop at {MAX_INT_DIGITS} digits"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_json(where, shown(value), "NaN and infinities have no JSON form")
        return value
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _not_json(
                    f"{where} key", shown(key), "JSON object keys are strings"
                )
            copy[key] = to_json(item, f"{where}[{shown(key)}]", depth + 1)
        return copy
    if isinstance(value, list | tuple):
        return [
            to_json(item, f"{where}[{index}]", depth + 1)
            for index, item in enumerate(value)
        ]
    raise _not_json(where, shown(value), f"{type(value).__name__} has no JSON form")


def check_meta(value: object) -> dict[str, Any]:
    """Return a JSON copy of ``meta``, which must be a mapping of JSON values."""
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"invalid meta {shown(value)}: use a dict of JSON values, "
            'such as {"source": "signup"}'
        )
    meta = to_json(value, "meta")
    assert isinstance(meta, dict)
    return meta


def _not_json(where: str, shown: str, why: str) -> InvalidOptionError:
    return InvalidOptionError(
        f"{where} is {shown}, which cannot be sent: {why}; "
        "use None, bool, int, float, str, list or dict with string keys"
    )
