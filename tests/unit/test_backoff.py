"""Waits between attempts."""

from __future__ import annotations

import pytest

from typedqueue import Backoff, ConfigurationError


def test_waits_double_up_to_the_cap() -> None:
    """Without jitter the waits are 1, 2, 4 ... seconds, capped at max_s."""
    backoff = Backoff(first_s=1, max_s=5, jitter=False)

    assert [backoff.wait_s(attempt) for attempt in range(1, 6)] == [1, 2, 4, 5, 5]


def test_jitter_stays_in_the_upper_half() -> None:
    """A jittered wait lies between half the ceiling and the ceiling."""
    backoff = Backoff(first_s=4, max_s=300)

    waits = [backoff.wait_s(2) for _ in range(200)]

    assert all(4 <= wait <= 8 for wait in waits)
    assert len(set(waits)) > 1


def test_total_ceiling_bounds_every_wait() -> None:
    """The total is the sum of the ceilings, and stays finite for huge counts."""
    backoff = Backoff(first_s=1, max_s=300)

    assert backoff.total_ceiling_s(1) == 0
    assert backoff.total_ceiling_s(4) == 1 + 2 + 4
    assert backoff.total_ceiling_s(10**9) < 300 * 10**9


@pytest.mark.parametrize(
    "fields", [{"first_s": -1}, {"max_s": float("inf")}, {"first_s": 10, "max_s": 1}]
)
def test_bad_settings_are_refused(fields: dict[str, float]) -> None:
    """Negative, infinite or inverted settings raise ConfigurationError."""
    with pytest.raises(ConfigurationError, match="Backoff"):
        Backoff(**fields)
