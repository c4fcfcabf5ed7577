"""Named numbers kept small: a probe's phase timings and rate limits, held for every key."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

# Each distinct list of names once: every key's REST probe has the same few phases.
_SHARED_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


class Readings(Mapping[str, float]):
    """A read-only mapping of names to floats: packed doubles under a shared tuple of names.

    The store holds several per key and probe (phases, rate limits, counts by code) until the
    next probe: a dict with an object per float would be about three times the size (the
    memory row of docs/performance.md; figures in bench/NOTES.md). Never changed once made.
    """

    __slots__ = ("_names", "_packed")

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        values = values or {}
        names = tuple(values)
        self._names = _SHARED_NAMES.setdefault(names, names)
        self._packed = struct.pack(f"{len(names)}d", *values.values())

    def __getitem__(self, name: str) -> float:
        try:
            index = self._names.index(name)
        except ValueError:
            raise KeyError(name) from None
        value: float = struct.unpack_from("d", self._packed, index * 8)[0]
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def pairs(self) -> list[tuple[str, float]]:
        """(name, value) pairs in one unpacking; items() looks each name up again."""
        values = struct.unpack(f"{len(self._names)}d", self._packed)
        return list(zip(self._names, values, strict=True))

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"Readings({dict(self)!r})"


NO_READINGS = Readings()


def readings(values: Mapping[str, float]) -> Readings:
    """`values` as Readings, without copying what already is; one shared empty one."""
    if isinstance(values, Readings):
        return values
    return Readings(values) if values else NO_READINGS


def incremented(counts: Readings, name: str) -> Readings:
    """`counts` with one more `name`: counts are readings too, exact as doubles up to 2**53."""
    return Readings({**counts, name: counts.get(name, 0.0) + 1})
