"""A scrape sends the shared blocks in bounded slices, byte for byte, without one joined body."""

from __future__ import annotations

import random

from exporter.server import _slices


def test_slices_carry_every_byte_in_order_and_stay_bounded() -> None:
    rng = random.Random(3)
    size = 1024
    for _ in range(200):
        parts = [rng.randbytes(rng.choice((0, 1, 50, 700, 1023, 1024, 5000))) for _ in range(30)]
        slices = list(_slices(parts, size))
        assert b"".join(bytes(piece) for piece in slices) == b"".join(parts)
        # Small blocks are joined until they reach the size, so a slice is under twice it.
        assert all(0 < len(piece) < 2 * size for piece in slices)


def test_a_large_block_is_sent_as_views_not_copied() -> None:
    block = bytes(range(256)) * 40
    slices = list(_slices([b"head\n", block, b"tail\n"], 1024))
    views = [piece for piece in slices if isinstance(piece, memoryview)]
    assert len(views) == 10 and all(view.obj is block for view in views)
    assert bytes(slices[0]) == b"head\n" and bytes(slices[-1]) == b"tail\n"
