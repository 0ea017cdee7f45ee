"""Error messages show the offending value without failing themselves."""

from __future__ import annotations

from typedqueue._errors import shown


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_short_values_show_as_repr() -> None:
    """A value with a short repr appears exactly as repr() gives it."""
    assert shown("5x") == "'5x'"


def test_long_and_unprintable_values_are_cut() -> None:
    """Long reprs are cut to the limit; a failing repr names the type."""
    assert shown("a" * 200, limit=10) == "'aaaaaa..."
    assert shown(10**5000) == "<int that cannot be printed>"
    assert shown(Unprintable()) == "<Unprintable that cannot be printed>"
