"""Parsing of the delay option."""

from __future__ import annotations

from datetime import timedelta

import pytest

from typedqueue import InvalidDelayError
from typedqueue._delay import parse_delay
from typedqueue._errors import shown


@pytest.mark.parametrize(
    ("delay", "expected_ms"),
    [
        ("1d", 86_400_000),
        ("500ms", 500),
        (1500, 1500),
        ("5m", 300_000),
        ("1h", 3_600_000),
        (0, 0),
        ("30s", 30_000),
        ("1.5s", 1500),
        (0.2, 1),
        (timedelta(seconds=3), 3000),
    ],
)
def test_accepted_forms(delay: object, expected_ms: int) -> None:
    """Each accepted form parses to whole milliseconds, rounded up."""
    assert parse_delay(delay) == expected_ms


@pytest.mark.parametrize(
    "delay",
    [
        "5x",
        "",
        "-1s",
        -5,
        float("nan"),
        float("inf"),
        True,
        "1.5.0s",
        "1S",
        "s",
        None,
        [1],
        timedelta(seconds=-1),
        "366d",
        " 5s",
        "5 s",
        "5s\n",
        "\u0663s",
        10**400,
        "9" * 400 + "d",
    ],
)
def test_rejected_forms(delay: object) -> None:
    """Anything else raises an error that is also a ValueError and names the forms."""
    with pytest.raises(InvalidDelayError) as raised:
        parse_delay(delay)

    assert isinstance(raised.value, ValueError)
    assert shown(delay) in str(raised.value)
    assert '"500ms", "30s", "5m", "1h", "1d"' in str(raised.value)
