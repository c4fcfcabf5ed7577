"""A scrape sends the shared blocks through one bounded buffer, byte for byte, without one
joined body."""

from __future__ import annotations

import random

from exporter.server import _slices


def test_slices_carry_every_byte_in_order_and_stay_bounded() -> None:
    rng = random.Random(3)
    size = 1024
    for _ in range(200):
        parts = [rng.randbytes(rng.choice((0, 1, 50, 700, 1023, 1024, 5000))) for _ in range(30)]
        buffer = memoryview(bytearray(size))
        # Each slice is read before the next is asked for, as the scrape does.
        sent = b"".join(bytes(piece) for piece in _slices(parts, buffer))
        assert sent == b"".join(parts)
        assert all(0 < len(piece) <= size for piece in _slices(parts, buffer))


def test_a_large_block_is_sent_as_views_not_copied() -> None:
    block = bytes(range(256)) * 40
    buffer = memoryview(bytearray(1024))
    slices = [(piece.obj, bytes(piece)) for piece in _slices([b"head\n", block, b"tail\n"], buffer)]
    assert [owner is block for owner, _ in slices].count(True) == 10
    assert slices[0][1] == b"head\n" and slices[-1][1] == b"tail\n"
    assert b"".join(data for _, data in slices) == b"head\n" + block + b"tail\n"
