"""Readings: the compact mapping the store keeps phases, rate limits and counts in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.readings import NO_READINGS, Readings, incremented, readings


def test_a_readings_reads_like_the_dict_it_was_made_from() -> None:
    values = {"connect": 0.012, "tls": 0.034, "first_byte": 0.5}
    made = Readings(values)
    assert made == values and values == made
    assert list(made) == list(values) and len(made) == 3
    assert made["tls"] == 0.034 and made.get("transfer") is None and "connect" in made
    assert dict(made.items()) == values
    assert made.pairs() == list(values.items()) and NO_READINGS.pairs() == []
    assert "transfer" not in made and 0.012 not in made and None not in made
    with pytest.raises(KeyError):
        made["transfer"]
    assert repr(made) == f"Readings({values!r})"


@given(st.dictionaries(st.text(max_size=12), st.floats(allow_nan=False)))
def test_any_floats_come_back_exactly(values: dict[str, float]) -> None:
    assert dict(Readings(values)) == values


def test_the_same_names_are_held_once_and_empty_is_one_object() -> None:
    a, b = Readings({"x": 1.0, "y": 2.0}), Readings({"x": 3.0, "y": 4.0})
    assert a._names is b._names
    assert readings({}) is NO_READINGS and readings(a) is a
    assert readings({"x": 1.0}) == {"x": 1.0}


def test_counting_makes_a_new_readings_and_leaves_the_old_one() -> None:
    once = incremented(NO_READINGS, "1000")
    twice = incremented(once, "1000")
    other = incremented(twice, "4000")
    assert (once, twice, other) == ({"1000": 1}, {"1000": 2}, {"1000": 2, "4000": 1})
    assert NO_READINGS == {}
    # Doubles count exactly far beyond any probe count.
    assert incremented(Readings({"n": 2.0**52}), "n")["n"] == 2.0**52 + 1
