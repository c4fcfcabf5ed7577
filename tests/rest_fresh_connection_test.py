"""A probe on a new connection (connect and TLS timed) reads every answer and failure as a probe
on a pooled one reads it: the same verdicts, over real sockets, for every simulator scenario and
for raw bytes no HTTP server would send; it sends the key's headers, then closes."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import time
from typing import Any

import pytest

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.probes.rest import RestProber
from exporter.result import ProbeResult
from exporter.simulator import SCENARIOS, RunningSimulator, make_key
from exporter.simulator.rest import REST_BEHAVIOURS
from tests.support.key_config import key_config
from tests.support.proxy import no_proxy_from_outside
from tests.support.rest_paths import rest_both_ways
from tests.support.sockets import established_to
from tests.support.tls import Tls, simulator_over_tls, tls

__all__ = ["no_proxy_from_outside", "simulator_over_tls", "tls"]  # fixtures from tests/support
MODELS = json.dumps({"object": "list", "data": [{"id": "gpt-realtime", "object": "model"}]})
TIMEOUT_S = 1.0
# Scenarios whose argument is a delay in ms; the rest take none.
DELAYED = {"slow": 50, "drip": 50}


def own_config(base_url: str, tls: Tls | None = None, **fields: Any) -> KeyConfig:
    ca_file = str(tls.ca_file) if tls else None
    return key_config("own", base_url=base_url, timeout=TIMEOUT_S, tls_ca_file=ca_file, **fields)


def verdict(result: ProbeResult) -> dict[str, Any]:
    """What a result says, less what only an exception's wording or the clock decides."""
    said = {
        "result": result.result,
        "error_code": result.error_code,
        "http_status": result.http_status,
        # connect and tls are timed on a new connection only.
        "phases": sorted(set(result.phases) - {"connect", "tls"}),
        "retry_after": result.retry_after is not None,
        "ratelimit": sorted(name for name, _ in result.ratelimit.pairs()),  # counts move on
        "request_id": bool(result.request_id),
    }
    if result.http_status:  # an answer: the message is read from it, word for word
        said["message"] = re.sub(r"req_[0-9a-f]+", "req_...", result.message)
    return said


REST_SCENARIOS = sorted(name for name in SCENARIOS if name in REST_BEHAVIOURS)


def test_every_rest_scenario_is_compared() -> None:
    assert len(REST_SCENARIOS) >= 20, REST_SCENARIOS


@pytest.mark.parametrize("scenario", REST_SCENARIOS)
async def test_every_simulator_answer_reads_the_same_fresh_and_pooled(
    scenario: str, simulator: RunningSimulator, tls: Tls
) -> None:
    key = make_key(scenario, DELAYED.get(scenario))
    own, through_aiohttp = await rest_both_ways(own_config(simulator.base_url, tls), key)
    assert verdict(own) == verdict(through_aiohttp), (own, through_aiohttp)
    assert key not in own.message


async def test_an_untrusted_certificate_reads_the_same_fresh_and_pooled(
    simulator: RunningSimulator,
) -> None:
    own, through_aiohttp = await rest_both_ways(own_config(simulator.base_url), make_key("ok"))
    assert own.result is through_aiohttp.result is Result.TLS_ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in own.message
    assert set(own.phases) == {"connect"}
    assert through_aiohttp.phases == {}


class RawServer:
    """A TCP server on loopback: reads one request head, writes canned bytes, then waits for
    the client to leave (or leaves at once), noting what came and when the client went."""

    def __init__(self, answer: bytes, *, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.heads: list[bytes] = []
        self.connections = 0
        self.client_left: list[float] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(self.answer)
            await writer.drain()
            if not self.close_after_answer:
                while await reader.read(65536):
                    pass
                self.client_left.append(time.perf_counter())
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_left.append(time.perf_counter())
        finally:
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def answer(status_line: str, body: str, *headers: str) -> bytes:
    head = [status_line, "Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n" + body).encode()


GZIPPED_ERROR = gzip.compress(b'{"error": {"code": "invalid_api_key"}}')
RAW_ANSWERS = {
    "interim_100_then_200": (
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer("HTTP/1.1 200 OK", MODELS),
        Result.OK,
    ),
    "early_hints_then_200": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </v1>\r\n\r\n" + answer("HTTP/1.1 200 OK", MODELS),
        Result.OK,
    ),
    "http_1_0_body_to_eof": (
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + MODELS.encode(),
        Result.OK,
    ),
    "not_http": (b"SSH-2.0-OpenSSH_9.2p1\r\n", Result.PROTOCOL_ERROR),
    "header_line_too_long": (
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
        Result.PROTOCOL_ERROR,
    ),
    "body_cut_short": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + MODELS.encode(),
        Result.CONNECTION_ERROR,
    ),
    "closed_without_answer": (b"", Result.CONNECTION_ERROR),
    "chunked_gzip": (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n" + b"%x\r\n" % len(GZIPPED_ERROR) + GZIPPED_ERROR + b"\r\n0\r\n\r\n",
        Result.INVALID_API_KEY,
    ),
}


@pytest.mark.parametrize("case", sorted(RAW_ANSWERS))
async def test_raw_answers_read_the_same_fresh_and_pooled(case: str) -> None:
    raw, expected = RAW_ANSWERS[case]
    closes = case in {"not_http", "header_line_too_long", "body_cut_short", "closed_without_answer"}
    server = RawServer(raw, close_after_answer=closes or case == "http_1_0_body_to_eof")
    try:
        own, through_aiohttp = await rest_both_ways(
            own_config(await server.start()), make_key("ok")
        )
    finally:
        await server.close()
    assert own.result is expected, own
    assert verdict(own) == verdict(through_aiohttp), (own, through_aiohttp)


async def test_the_request_head_carries_the_keys_headers() -> None:
    server = RawServer(answer("HTTP/1.1 200 OK", MODELS))
    config = own_config(await server.start(), organization="org-1", project="proj_2")
    key = make_key("ok")
    try:
        own, through_aiohttp = await rest_both_ways(config, key)
    finally:
        await server.close()
    assert own.result is through_aiohttp.result is Result.OK
    own_head, aiohttp_head = (_headers(head) for head in server.heads)
    assert server.heads[0].startswith(b"GET /v1/models HTTP/1.1\r\n")
    own_head.pop("connection", None)
    aiohttp_head.pop("connection", None)
    assert own_head == aiohttp_head
    assert own_head["authorization"] == f"Bearer {key}"
    assert own_head["openai-organization"] == "org-1"
    assert own_head["openai-project"] == "proj_2"
    assert own_head["user-agent"] == "openai-key-exporter"
    assert own_head["host"] == config.base_url.split("/")[2]


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode().split("\r\n")[1:]
    pairs = (line.split(": ", 1) for line in lines if line)
    return {name.lower(): value for name, value in pairs}


@pytest.mark.parametrize("bad", ["\n", "\r", "\0", "\r\nX-Injected: 1"])
async def test_a_key_that_cannot_be_a_header_is_never_sent(bad: str) -> None:
    server = RawServer(answer("HTTP/1.1 200 OK", MODELS))
    key = make_key("ok")
    broken = key[:20] + bad + key[20:]
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(
            own_config(await server.start()), broken, fresh=True
        )
    finally:
        await prober.aclose()
        await server.close()
    assert result.result is Result.KEY_MALFORMED, result
    assert server.connections == 0  # refused before connecting: nothing reached the wire
    assert key[:20] not in result.message and key[20:] not in result.message


async def test_the_connection_is_closed_after_the_answer_and_after_a_timeout() -> None:
    answered = RawServer(answer("HTTP/1.1 200 OK", MODELS))
    silent = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")  # then nothing
    prober = RestProber()
    try:
        for server, expected in ((answered, Result.OK), (silent, Result.TIMEOUT)):
            config = own_config(await server.start())
            result = await prober.probe_on_connection(config, make_key("ok"), fresh=True)
            done = time.perf_counter()
            assert result.result is expected, result
            for _ in range(100):
                if server.client_left:
                    break
                await asyncio.sleep(0.01)
            assert server.client_left, f"{expected}: the connection was left open"
            assert server.client_left[0] - done < 0.5
    finally:
        await prober.aclose()
        await answered.close()
        await silent.close()


async def test_an_unknown_host_names_the_host_and_port(tls: Tls) -> None:
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(
            own_config("https://host.invalid/v1", tls), make_key("ok"), fresh=True
        )
    finally:
        await prober.aclose()
    assert result.result is Result.CONNECTION_ERROR, result
    assert "cannot connect to host host.invalid:443" in result.message.lower(), result.message


async def test_a_refused_connection_keeps_no_phase_and_names_the_port() -> None:
    server = RawServer(b"")
    url = await server.start()
    await server.close()  # nothing listens there any more
    own, through_aiohttp = await rest_both_ways(own_config(url), make_key("ok"))
    assert own.result is through_aiohttp.result is Result.CONNECTION_ERROR
    assert own.phases == through_aiohttp.phases == {}
    assert url.split("/")[2] in own.message


async def test_a_probe_cancelled_at_any_step_leaves_no_connection_open() -> None:
    """A timeout or a reload cancels probes wherever they are: resolving, racing addresses,
    connecting, in TLS or reading. No connected socket may outlive its probe."""
    server = RawServer(answer("HTTP/1.1 200 OK", MODELS))
    base_url = (await server.start()).replace("127.0.0.1", "localhost")  # resolved, then raced
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    prober = RestProber()
    try:
        for steps in range(40):  # loop steps after the server saw the connection, then cancel
            accepted = server.connections
            probe = prober.probe_on_connection(own_config(base_url), make_key("ok"), fresh=True)
            task = asyncio.ensure_future(probe)
            while server.connections == accepted and not task.done():  # noqa: ASYNC110 (steps)
                await asyncio.sleep(0)
            for _ in range(steps % 8):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.sleep(0.3)
        assert established_to([port], os.getpid()) == 0
    finally:
        await prober.aclose()
        await server.close()


@pytest.mark.parametrize("field", ["organization", "project"])
async def test_a_control_character_in_a_header_is_refused_fresh_and_pooled(field: str) -> None:
    """Every control character but tab, and DEL, is refused before connecting, on a new
    connection as on a pooled one. The key is fine, so neither blames it (the configuration
    refuses such a value before it gets here)."""
    server = RawServer(answer("HTTP/1.1 200 OK", MODELS))
    try:
        config = own_config(await server.start(), **{field: "org-\x01\x7f"})
        own, through_aiohttp = await rest_both_ways(config, make_key("ok"))
    finally:
        await server.close()
    assert own.result is through_aiohttp.result is Result.CONNECTION_ERROR, (own, through_aiohttp)
    assert "check base_url, organization and project" in own.message
    assert server.connections == 0  # refused before connecting


async def test_a_key_echoed_in_the_request_id_is_not_kept() -> None:
    key = make_key("ok")
    server = RawServer(answer("HTTP/1.1 200 OK", MODELS, f"X-Request-Id: {key}"))
    try:
        own, through_aiohttp = await rest_both_ways(own_config(await server.start()), key)
    finally:
        await server.close()
    for result in (own, through_aiohttp):
        assert result.result is Result.OK, result
        assert key[8:20] not in result.request_id, result.request_id
