"""Measuring instruments: /proc CPU and memory, a lean /metrics scraper, percentiles."""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_mib(pid: int, field_name: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, in MiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no {field_name} in /proc/{pid}/status")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Scraper:
    """GET a URL over one keep-alive connection, reading the body into a reused buffer.

    As lean as a client can be in Python, so the latency is the server's, not the client's.
    `/metrics` by default; with `context`, over TLS (the handshake before the first timing).
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._request = (
            f"GET {parts.path or '/metrics'} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode()
        )
        self._timeout = timeout
        self._context = context
        self._buffer = memoryview(bytearray(1 << 20))
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def scrape(self, keep: bool = False) -> tuple[float, int, bytes]:
        """(seconds until the last byte, body size, the body when keep)."""
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=self._timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                self._sock = self._context.wrap_socket(self._sock, server_hostname=self._address[0])
        sock, buffer = self._sock, self._buffer
        started = time.perf_counter()
        sock.sendall(self._request)
        head = b""
        while b"\r\n\r\n" not in head:
            received = sock.recv_into(buffer)
            if not received:
                raise ConnectionError("the exporter closed the connection")
            head += bytes(buffer[:received])
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise ConnectionError(f"{self._request.split()[1].decode()} answered {status.decode()}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        kept = [rest] if keep else []
        got = len(rest)
        while got < length:
            received = sock.recv_into(buffer)
            if not received:
                raise ConnectionError("the exporter closed the connection mid-body")
            if keep:
                kept.append(bytes(buffer[:received]))
            got += received
        return time.perf_counter() - started, length, b"".join(kept)


@dataclass
class ScrapeSeries:
    seconds: list[float] = field(default_factory=list)
    size: int = 0

    @property
    def p50_ms(self) -> float:
        return percentile(self.seconds, 0.5) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.seconds, 0.99) * 1000


GZIP = {"Accept-Encoding": "gzip"}  # what Prometheus sends with every scrape


def scrape_series(
    url: str,
    max_count: int,
    max_seconds: float,
    pause: float,
    headers: dict[str, str] | None = None,
) -> ScrapeSeries:
    """Sequential scrapes, bounded in count and time, `pause` seconds apart; the size is the
    body as sent (compressed, with GZIP headers)."""
    series = ScrapeSeries()
    scraper = Scraper(url, headers=headers)
    deadline = time.monotonic() + max_seconds
    try:
        while len(series.seconds) < max_count and time.monotonic() < deadline:
            seconds, series.size, _ = scraper.scrape()
            series.seconds.append(seconds)
            time.sleep(pause)
    finally:
        scraper.close()
    return series


@dataclass
class Hammer:
    """`clients` threads scraping back to back for `seconds`; each thread its own connection."""

    url: str
    clients: int
    seconds: float
    scrapes: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        threads = [
            threading.Thread(target=self._client, args=(deadline,), daemon=True)
            for _ in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.seconds + 120)

    def _client(self, deadline: float) -> None:
        scraper = Scraper(self.url, timeout=60.0)
        try:
            while time.monotonic() < deadline:
                try:
                    scraper.scrape()
                    done, failed = 1, 0
                except OSError:
                    scraper.close()
                    done, failed = 0, 1
                    time.sleep(0.1)
                with self._lock:
                    self.scrapes += done
                    self.errors += failed
        finally:
            scraper.close()


def parse_samples(text: str) -> dict[str, dict[str, float]]:
    """metric name -> {label text: value}, for the few families the benchmark reads."""
    samples: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        samples.setdefault(name, {})[labels.rstrip("}")] = float(value)
    return samples


def label(labels: str, name: str) -> str:
    for part in labels.split(","):
        key, _, value = part.partition("=")
        if key == name:
            return value.strip('"')
    return ""


def loopback_floor(size: int, count: int) -> ScrapeSeries:
    """The same client fetching `size` ready-made bytes from a server that only sends them:
    what any exporter pays to move an exposition this big over loopback on this machine."""
    body = b"#" * size
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode()
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            while connection.recv(65536):
                connection.sendall(head)
                connection.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    series = ScrapeSeries()
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
    try:
        for _ in range(count):
            seconds, series.size, _ = scraper.scrape()
            series.seconds.append(seconds)
    finally:
        scraper.close()
        server.close()
    return series
