"""Inference probe (opt-in, billed): `POST {base_url}/responses` with a one-word input, the only
probe that sees credit, classified by the same table as REST."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.probes.common import Target, sendable
from exporter.probes.http_sessions import HttpSessions
from exporter.probes.rest_answer import (
    classify_exception,
    failure,
    from_response,
    parse_json,
    read_capped,
    timed_out,
)
from exporter.probes.rest_timing import ProbeClock
from exporter.provider import auth_headers
from exporter.result import ProbeResult

log = logging.getLogger("exporter.probes.inference")

PROBE = "inference"
INPUT = "ping"  # one word: about 8 input tokens with the model's framing
MAX_OUTPUT_TOKENS = 16  # the smallest value the Responses API accepts
# An upper bound per probe, for the estimate: the input as billed, and every output token allowed.
TOKENS_PER_PROBE = (10, MAX_OUTPUT_TOKENS)
# US dollars per million input and output tokens, from OpenAI's public price list when this was
# written; prices change, so the estimate says which price it used. A model not listed here is
# estimated in tokens only.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-5-nano": (0.05, 0.40),
}
_MONTH_SECONDS = 30 * 86400.0


def request_body(model: str) -> dict[str, Any]:
    """The whole request: nothing stored, the smallest answer OpenAI allows."""
    return {"model": model, "input": INPUT, "max_output_tokens": MAX_OUTPUT_TOKENS, "store": False}


def is_response(payload: Any) -> bool:
    # `object: "response"` is documented; a proxy that strips it still sends `output` or `usage`.
    return isinstance(payload, dict) and (
        payload.get("object") == "response" or "output" in payload or "usage" in payload
    )


def billed_tokens(payload: Any) -> int:
    """usage.total_tokens, else input + output tokens; 0 when the answer carries no usage."""
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0
    total = _count(usage.get("total_tokens"))
    if total is None:
        total = sum(_count(usage.get(part)) or 0 for part in ("input_tokens", "output_tokens"))
    return total


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return None


@dataclass(frozen=True)
class CostEstimate:
    """What the inference probes of a configuration cost in a 30-day month, at most."""

    keys: int
    probes: float
    tokens: float
    usd: float | None  # None when a model's price is unknown
    prices: str  # the prices used, for the log line

    def log_fields(self) -> dict[str, object]:
        return {
            "keys": self.keys,
            "probes_per_month": round(self.probes),
            "tokens_per_month_at_most": round(self.tokens),
            "usd_per_month_at_most": "unknown" if self.usd is None else f"{self.usd:.4f}",
            "prices_usd_per_million_tokens": self.prices,
        }


def monthly_cost(keys: Iterable[KeyConfig]) -> CostEstimate:
    """The upper bound of the inference probes' monthly bill, from each key's model and interval."""
    count, probes, tokens, usd = 0, 0.0, 0.0, 0.0
    known = True
    models: set[str] = set()
    for key in keys:
        if PROBE not in key.probes:
            continue
        count += 1
        runs = _MONTH_SECONDS / key.inference.interval
        probes += runs
        tokens += runs * sum(TOKENS_PER_PROBE)
        models.add(key.inference.model)
        price = PRICES_PER_MILLION.get(key.inference.model)
        if price is None:
            known = False
            continue
        usd += runs * (TOKENS_PER_PROBE[0] * price[0] + TOKENS_PER_PROBE[1] * price[1]) / 1e6
    prices = ", ".join(
        f"{model} {PRICES_PER_MILLION[model][0]:g}/{PRICES_PER_MILLION[model][1]:g}"
        if model in PRICES_PER_MILLION
        else f"{model} unknown"
        for model in sorted(models)
    )
    return CostEstimate(count, probes, tokens, usd if known else None, prices)


def log_cost(keys: Iterable[KeyConfig]) -> CostEstimate:
    estimate = monthly_cost(keys)
    if estimate.keys:
        log.info("the inference probe is billed", extra={"fields": estimate.log_fields()})
    return estimate


def _connector(context: ssl.SSLContext) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(ssl=context, limit=64, keepalive_timeout=30)


class InferenceProber:
    """One kept-alive session per CA file; a probe every 15 minutes needs no more."""

    def __init__(self) -> None:
        self._sessions = HttpSessions({"kept_alive": _connector})
        self._targets: dict[str, Target] = {}

    def _target(self, base_url: str) -> Target:
        target = self._targets.get(base_url)
        if target is None:
            target = self._targets[base_url] = Target.of(f"{base_url}/responses")
        return target

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        session = self._sessions.get(config.tls_ca_file, "kept_alive")
        clock = ProbeClock()  # phases are not timed here: duration only
        started = time.perf_counter()
        try:
            target = self._target(config.base_url)  # ValueError: a URL yarl cannot read
            async with asyncio.timeout(config.timeout):
                async with session.post(
                    target.url,
                    json=request_body(config.inference.model),
                    headers=sendable(auth_headers(config, key)),
                    allow_redirects=False,
                    proxy=target.proxy,
                    proxy_auth=target.proxy_auth,
                ) as response:
                    body, oversize = await read_capped(response.content)
                    status, headers = response.status, response.headers
        except TimeoutError as error:
            return timed_out(error, clock, started, False, config.timeout, key, probe=PROBE)
        except (aiohttp.ClientError, OSError, ValueError) as error:
            return failure(clock, started, False, *classify_exception(error, key), probe=PROBE)
        result = from_response(
            status,
            headers,
            body,
            oversize,
            time.perf_counter() - started,
            {},
            key,
            probe=PROBE,
            expected=(is_response, "a response object"),
        )
        if result.result is Result.OK:
            # Billed only when OpenAI made a response; its usage says how much.
            result = replace(result, billed_tokens=billed_tokens(parse_json(body)))
        return result

    def forget(self, name: str) -> None:
        pass  # nothing is kept per key

    async def aclose(self) -> None:
        await self._sessions.aclose()
