"""/metrics gzipped as Prometheus asks for it: one gzip member made of pieces deflated once per
change, byte for byte the plain exposition once decoded, by curl and Prometheus' decoders too."""

from __future__ import annotations

import asyncio
import gzip
import random
import subprocess
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from exporter.gzip_body import GZIP_HEADER, GzipBody, accepts_gzip
from exporter.metrics import SEGMENT_KEYS, ExporterMetrics, MetricsRenderer
from exporter.server import _gzip_body
from exporter.simulator import make_key
from exporter.state import StateStore
from tests.conftest import require_tool
from tests.harness import start_exporter_process, write_config, write_key
from tests.support.metrics import fresh_render, key_samples, record_random_results


def _single_member(body: bytes) -> bytes:
    """Decode as curl and most HTTP clients do: one gzip member, nothing after it."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = decoder.decompress(body)
    assert decoder.eof, "the gzip member does not end"
    assert decoder.unused_data == b"", "bytes after the first gzip member"
    return data


def _gzip(blocks: list[bytes], kept: list[bytes | None]) -> bytes:
    body = GzipBody()
    pieces = [body.piece(block, piece) for block, piece in zip(blocks, kept, strict=True)]
    return GZIP_HEADER + b"".join(pieces) + body.end()


def test_pieces_made_at_different_times_make_one_valid_member() -> None:
    rng = random.Random(5)
    for _ in range(50):
        blocks = [
            rng.randbytes(rng.choice((0, 1, 300)))
            + b"openai_probe_success 1\n" * rng.randrange(900)
            for _ in range(rng.randrange(1, 40))
        ]
        earlier = GzipBody()  # pieces an earlier scrape made, with its own compressor
        kept = [earlier.piece(block) if rng.random() < 0.5 else None for block in blocks]
        body = _gzip(blocks, kept)
        assert _single_member(body) == b"".join(blocks)
        assert gzip.decompress(body) == b"".join(blocks)  # CRC and size checked


def test_a_wrong_piece_is_caught_by_the_crc() -> None:
    blocks = [b"a 1\n" * 100, b"b 2\n" * 100]
    stale = GzipBody().piece(b"b 3\n" * 100)
    with pytest.raises(gzip.BadGzipFile, match="CRC"):
        gzip.decompress(_gzip(blocks, [None, stale]))


@pytest.mark.parametrize(
    ("header", "gzip_wanted"),
    [
        ("gzip", True),  # Prometheus
        ("gzip, deflate, br, zstd", True),  # browsers, httpx
        ("GZip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("gzip;q=nonsense", False),
        ("identity", False),
        ("deflate, br", False),
        ("", False),
    ],
)
def test_accept_encoding(header: str, gzip_wanted: bool) -> None:
    assert accepts_gzip(header) is gzip_wanted


def _fleet(keys: int) -> tuple[StateStore, MetricsRenderer, list[str]]:
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics())
    store.subscribe(renderer.update)
    names = [f"key-{index}" for index in range(keys)]
    store.configure({name: ("rest", "realtime") for name in names})
    return store, renderer, names


def _key_lines(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if not line.startswith((b"process_", b"python_"))]


def test_gzip_body_decodes_to_the_plain_exposition_through_updates() -> None:
    store, renderer, names = _fleet(3 * SEGMENT_KEYS + 7)
    rng = random.Random(2)

    async def scrapes() -> None:
        for step in range(300):
            record_random_results(store, rng, names)
            if step % 20 == 0:
                body = b"".join(await _gzip_body(renderer))
                assert key_samples(_single_member(body)) == fresh_render(store), step

    asyncio.run(scrapes())


def test_a_plain_scrape_after_a_gzip_one_says_what_changed_since() -> None:
    store, renderer, names = _fleet(SEGMENT_KEYS)
    rng = random.Random(9)
    renderer.render()
    for step in range(40):
        record_random_results(store, rng, names)  # one rendering, joined by the next scrape
        body = b"".join(asyncio.run(_gzip_body(renderer)))
        assert key_samples(_single_member(body)) == fresh_render(store), step
        assert key_samples(renderer.render()) == fresh_render(store), step


def test_a_piece_is_deflated_once_and_kept_until_its_block_changes() -> None:
    store, renderer, names = _fleet(2 * SEGMENT_KEYS)
    rng = random.Random(4)
    for _ in range(200):
        record_random_results(store, rng, names)

    def missing() -> int:
        snapshot = renderer.gzip_snapshot()
        return len(snapshot.deflated_here)

    before = missing()
    assert before > 0
    asyncio.run(_gzip_body(renderer))
    assert missing() == 0, "a second scrape deflated again what had not changed"
    record_random_results(store, rng, names[:1])  # one key of the first segment
    renderer.render_parts()
    changed = missing()
    assert 0 < changed < before / 2, (changed, before)


def test_a_piece_of_a_block_that_changed_meanwhile_is_not_kept() -> None:
    store, renderer, names = _fleet(SEGMENT_KEYS)
    rng = random.Random(6)
    for _ in range(50):
        record_random_results(store, rng, names)
    snapshot = renderer.gzip_snapshot()
    body = GzipBody()
    kept_pieces = zip(snapshot.blocks, snapshot.pieces, strict=True)
    pieces = [body.piece(block, kept) for block, kept in kept_pieces]
    for _ in range(10):  # probes finish while the scrape yields the loop
        record_random_results(store, rng, names)
    renderer.render_parts()
    renderer.keep_pieces(snapshot, pieces)

    async def check() -> None:
        body = b"".join(await _gzip_body(renderer))
        assert _key_lines(_single_member(body)) == _key_lines(renderer.render())

    asyncio.run(check())


@pytest.fixture(scope="module")
def exporter_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("gzip")
    entries = []
    for index in range(SEGMENT_KEYS + 6):  # two segments
        path = write_key(directory, f"key-{index}", make_key("ok", seed=f"gzip-{index}"))
        entries.append({"name": f"key-{index}", "api_key_file": str(path)})
    # Port 9 on loopback refuses: every probe is a quick connection error, about 17 a second.
    config = write_config(
        directory / "config.yml",
        "http://127.0.0.1:9/v1",
        entries,
        "4s",
        "1s",
        ("rest",),
        retry_interval="4s",
    )
    process, url = start_exporter_process(config, directory)
    try:
        yield url
    finally:
        process.stop()


def _get(url: str, encoding: str) -> bytes:
    """The body as sent (not decoded), after checking the headers that go with it."""
    with httpx.stream(
        "GET", f"{url}/metrics", headers={"Accept-Encoding": encoding}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["vary"] == "Accept-Encoding"
        raw = b"".join(response.iter_raw())
        assert int(response.headers["content-length"]) == len(raw)
        gzipped = response.headers.get("content-encoding") == "gzip"
    assert gzipped is (encoding == "gzip"), response.headers
    return raw


def _between_probes(url: str, gzipped: Callable[[], bytes]) -> tuple[bytes, bytes]:
    """A plain scrape, then `gzipped` decoded, then a plain one again, until no probe landed in
    between: then the gzipped one must say exactly what the plain ones said."""
    for _ in range(50):
        before = _key_lines(_get(url, "identity"))
        decoded = _key_lines(gzipped())
        if _key_lines(_get(url, "identity")) == before:
            return b"\n".join(before), b"\n".join(decoded)
    pytest.fail("a probe landed between every pair of scrapes")


def test_the_exporter_gzips_when_asked_and_only_then(exporter_url: str) -> None:
    plain = _get(exporter_url, "identity")
    packed = _get(exporter_url, "gzip")
    assert len(packed) * 5 < len(plain), "gzip should shrink the exposition several times"
    expected, decoded = _between_probes(
        exporter_url, lambda: _single_member(_get(exporter_url, "gzip"))
    )
    assert decoded == expected


def test_curl_compressed_reads_the_exposition(exporter_url: str) -> None:
    """curl fails on a body of several gzip members: ours must be one."""
    curl = require_tool("curl")

    def by_curl() -> bytes:
        command = [curl, "--silent", "--show-error", "--fail", "--compressed"]
        done = subprocess.run(
            [*command, f"{exporter_url}/metrics"], capture_output=True, timeout=30
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    expected, decoded = _between_probes(exporter_url, by_curl)
    assert decoded == expected
