"""Parsing of the ``delay`` option into whole milliseconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Final

from typedqueue._errors import InvalidDelayError, shown

Delay = int | float | str | timedelta
"""What ``delay`` accepts: milliseconds, ``"<number><unit>"`` or a timedelta."""

MAX_DELAY_MS: Final = 365 * 24 * 3600 * 1000

_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DELAY_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_ACCEPTED: Final = (
    "use milliseconds as a number (1500), a string of a number and a unit "
    'among ms, s, m, h, d ("500ms", "30s", "5m", "1h", "1d"), '
    "or a datetime.timedelta, between 0 and 365 days"
)


def parse_delay(delay: object) -> int:
    """Return ``delay`` in whole milliseconds, rounded up.

    Rounding up keeps a job from ever becoming due before the caller asked.
    """
    if isinstance(delay, bool):
        # bool is an int to Python, but delay=True is a mistake, never 1 ms.
        raise _invalid(delay)

    if isinstance(delay, int) and abs(delay) > MAX_DELAY_MS:
        # Too large for a float, and out of range anyway.
        raise _invalid(delay)
    if isinstance(delay, int | float):
        delay_ms = float(delay)
    elif isinstance(delay, timedelta):
        delay_ms = delay.total_seconds() * 1000
    elif isinstance(delay, str):
        match = _DELAY_RE.fullmatch(delay)
        if match is None:
            raise _invalid(delay)
        number, unit = match.groups()
        try:
            delay_ms = float(number) * _UNIT_MS[unit]
        except OverflowError:
            raise _invalid(delay) from None
    else:
        raise _invalid(delay)

    if not math.isfinite(delay_ms) or not 0 <= delay_ms <= MAX_DELAY_MS:
        raise _invalid(delay)
    return math.ceil(delay_ms)


def _invalid(delay: object) -> InvalidDelayError:
    return InvalidDelayError(f"invalid delay {shown(delay)}: {_ACCEPTED}")
