"""A gzip body made of blocks deflated one by one, so that each block is compressed once and
reused by every scrape until it changes.

The body is one gzip member (curl refuses several): a header, the blocks' raw deflate pieces in
order, an empty final block, and the CRC and size of the whole. A piece ends byte-aligned after
a full flush, which also empties the compressor's window: no piece refers to another's bytes,
so pieces made at different times concatenate into one valid stream.
"""

from __future__ import annotations

import struct
import zlib

GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255))  # deflate; no name, no time, any OS
LEVEL = 1  # Prometheus text shrinks 13x at level 1; level 6 costs 2.5x the CPU for 15% fewer bytes
_LAST_BLOCK = b"\x03\x00"  # an empty final block (fixed Huffman codes, end of block)


class GzipBody:
    """The running CRC and size of the blocks sent so far, and a compressor reused for every
    piece (a fresh one per block would allocate its 256 KiB of state each time)."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0

    def piece(self, block: bytes, kept: bytes | None = None) -> bytes:
        """The block's piece: `kept` when an earlier scrape made it, else deflated now."""
        self._crc = zlib.crc32(block, self._crc)
        self._size += len(block)
        if kept is not None or not block:
            return kept or b""
        return self._compressor.compress(block) + self._compressor.flush(zlib.Z_FULL_FLUSH)

    def end(self) -> bytes:
        """An empty final block, then the CRC and size of every block given to `piece`."""
        return _LAST_BLOCK + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110: a q of 0 refuses it)."""
    for item in accept_encoding.lower().split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        quality = parameters.strip()
        if not quality.startswith("q="):
            return True
        try:
            return float(quality[2:]) > 0
        except ValueError:
            return False
    return False
