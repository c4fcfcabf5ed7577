"""Plain scrapes in flight together share the texts they inflate; a lone one keeps nothing, so
the exposition is held inflated only during a flood of plain scrapes."""

from __future__ import annotations

from exporter.gzip_body import deflate
from exporter.metrics import Exposition
from exporter.server import _plain_text, _PlainTexts

BLOCKS = [f'openai_key_valid{{key="key-{index}"}} 1\n'.encode() * 50 for index in range(20)]


def _exposition() -> Exposition:
    return Exposition([deflate(block) for block in BLOCKS], [b"# exporter-wide\n"])


def test_a_lone_plain_scrape_keeps_no_text() -> None:
    shared = _PlainTexts()
    exposition = _exposition()
    with shared.shared(exposition.held) as texts:
        assert b"".join(_plain_text(exposition, texts)) == b"".join(exposition.plain())
        assert texts.texts == {}
    assert shared.texts == {}


def test_plain_scrapes_in_flight_together_inflate_each_block_once() -> None:
    shared = _PlainTexts()
    exposition = _exposition()
    with shared.shared(exposition.held) as first, shared.shared(exposition.held) as second:
        sent = b"".join(_plain_text(exposition, first))
        assert len(first.texts) == len(BLOCKS)
        kept = dict(first.texts)
        assert b"".join(_plain_text(exposition, second)) == sent
        assert all(second.texts[block] is text for block, text in kept.items()), "inflated again"
    assert shared.texts == {}, "texts outlived the flood"
    assert sent == b"".join(BLOCKS) + b"# exporter-wide\n"


def test_a_newer_snapshot_drops_the_texts_of_replaced_blocks() -> None:
    shared = _PlainTexts()
    older = _exposition()
    newer = Exposition([deflate(b"changed 1\n"), *older.held[1:]], older.fresh)
    with shared.shared(older.held) as first, shared.shared(older.held):
        b"".join(_plain_text(older, first))
        with shared.shared(newer.held) as third:
            assert older.held[0] not in third.texts
            assert all(block in third.texts for block in older.held[1:])
            assert b"".join(_plain_text(newer, third)).startswith(b"changed 1\n")
