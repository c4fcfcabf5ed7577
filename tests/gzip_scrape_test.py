"""/metrics gzipped as Prometheus asks for it: one gzip member made of pieces deflated once per
change, byte for byte the plain exposition once decoded, by curl and Prometheus' decoders too."""

from __future__ import annotations

import gzip
import random
import subprocess
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from exporter.gzip_body import accepts_gzip, deflate, gzip_member, inflate
from exporter.metrics import SEGMENT_KEYS, ExporterMetrics, MetricsRenderer
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


def test_pieces_made_at_different_times_make_one_valid_member() -> None:
    rng = random.Random(5)
    for _ in range(50):
        blocks = [
            rng.randbytes(rng.choice((0, 1, 300)))
            + b"openai_probe_success 1\n" * rng.randrange(9000)  # some beyond 64 KiB
            for _ in range(rng.randrange(1, 40))
        ]
        deflated = [deflate(block) for block in blocks]
        rng.shuffle(order := list(range(len(blocks))))
        for index in order:  # made in another order, each one alone, then put in order
            deflated[index] = deflate(blocks[index])
        body = b"".join(gzip_member(deflated))
        assert _single_member(body) == b"".join(blocks)
        assert gzip.decompress(body) == b"".join(blocks)  # CRC and size checked
        assert [inflate(block) for block in deflated] == blocks


def test_a_wrong_piece_is_caught_by_the_crc() -> None:
    blocks = [deflate(b"a 1\n" * 100), deflate(b"b 2\n" * 100)]
    stale = deflate(b"b 3\n" * 100)
    wrong = (stale[0], blocks[1][1], blocks[1][2])  # the stale piece as the block
    with pytest.raises(gzip.BadGzipFile, match="CRC"):
        gzip.decompress(b"".join(gzip_member([blocks[0], wrong])))


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


def _gzipped(renderer: MetricsRenderer) -> bytes:
    return _single_member(b"".join(renderer.scrape().gzipped()))


def test_gzip_body_decodes_to_the_plain_exposition_through_updates() -> None:
    store, renderer, names = _fleet(3 * SEGMENT_KEYS + 7)
    rng = random.Random(2)
    for step in range(300):
        record_random_results(store, rng, names)
        if step % 20 == 0:
            assert key_samples(_gzipped(renderer)) == fresh_render(store), step


def test_a_plain_scrape_after_a_gzip_one_says_what_changed_since() -> None:
    store, renderer, names = _fleet(SEGMENT_KEYS)
    rng = random.Random(9)
    renderer.render()
    for step in range(40):
        record_random_results(store, rng, names)  # one rendering, joined by the next scrape
        assert key_samples(_gzipped(renderer)) == fresh_render(store), step
        assert key_samples(renderer.render()) == fresh_render(store), step


def test_a_join_deflates_only_the_families_that_changed() -> None:
    store, renderer, names = _fleet(2 * SEGMENT_KEYS)
    rng = random.Random(4)
    for _ in range(200):
        record_random_results(store, rng, names)
    before = renderer.scrape().held
    assert renderer.scrape().held is before, "a scrape with nothing new re-listed the blocks"
    record_random_results(store, rng, names[:1])  # one key of the first segment
    after = renderer.scrape().held
    kept = {id(block) for block in before}
    remade = [block for block in after if id(block) not in kept]
    assert 0 < len(remade) < len(after) / 4, (len(remade), len(after))


def test_a_scrape_in_flight_sends_what_it_took_though_probes_land_meanwhile() -> None:
    store, renderer, names = _fleet(SEGMENT_KEYS)
    rng = random.Random(6)
    for _ in range(50):
        record_random_results(store, rng, names)
    exposition = renderer.scrape()
    taken = renderer.render()
    for _ in range(10):  # probes finish while the scrape waits for the socket
        record_random_results(store, rng, names)
    assert _key_lines(b"".join(exposition.plain())) == _key_lines(taken)
    assert _key_lines(_single_member(b"".join(exposition.gzipped()))) == _key_lines(taken)
    assert key_samples(_gzipped(renderer)) == fresh_render(store)


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
