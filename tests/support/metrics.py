"""Reading an exposition in tests: samples by name and labels, results per key and probe."""

from __future__ import annotations

import random
import re

from exporter.classify import Result
from exporter.metrics import FAMILIES, render_key
from exporter.state import KeyIdentity, ProbeResult, StateStore

_RESULT = re.compile(r"^openai_probe_result\{(?P<labels>[^}]*)\} 1(?:\.0)?$", re.MULTILINE)


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def probe_results(metrics: str) -> dict[tuple[str, str], str]:
    """(key, probe) -> result, from the openai_probe_result series whose value is 1."""
    results = {}
    for match in _RESULT.finditer(metrics):
        labels = dict(_LABEL.findall(match.group("labels")))
        results[labels["key"], labels["probe"]] = labels["result"]
    return results


def key_samples(body: bytes) -> list[str]:
    return [
        line
        for line in body.decode().splitlines()
        if line.startswith("openai_")
        and not line.startswith(("openai_key_exporter_", "openai_probe_latency_seconds"))
    ]


def fresh_render(store: StateStore) -> list[str]:
    """What a renderer that re-renders everything from scratch would say."""
    blocks = [render_key(state) for state in store.states()]
    return [
        line
        for index in range(len(FAMILIES))
        for block in blocks
        for line in block[index].decode().splitlines()
    ]


def record_random_results(store: StateStore, rng: random.Random, names: list[str]) -> None:
    name = rng.choice(names)
    state = store.get(name)
    assert state is not None
    result = rng.choice(list(Result))
    store.record(
        name,
        KeyIdentity(fingerprint=f"sk-...{rng.randrange(10)}", kind="project"),
        ProbeResult(
            probe=rng.choice(list(state.probes)),
            result=result,
            duration=rng.random(),
            phases={"connect": rng.random(), "first_byte": rng.random()},
            http_status=rng.choice([200, 401, 429, 101]),
            error_code=result.value,
            ratelimit={"limit_requests": 500} if rng.random() < 0.3 else {},
            close_code=rng.choice([None, 1000, 1011]),
        ),
    )
