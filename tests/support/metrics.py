"""Reading an exposition in tests: samples by name and labels, results per key and probe."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import httpx

from exporter.classify import Result
from exporter.metrics import FAMILIES, render_key
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore

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


def parse_metrics(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for exact lookups in assertions."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


SAMPLE_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?(?P<rest>.*)$")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One /metrics body, with lookups by name and a subset of labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = SAMPLE_LINE.match(line)
            assert match, f"unparseable sample line {line!r}"
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            self.samples.append(Sample(match.group("name"), labels, float(match.group("rest"))))

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            sample
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one series matching; None when there is none."""
        found = self.find(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series: {found}"
        return found[0].value if found else None

    def result(self, key: str, probe: str) -> str | None:
        found = [s for s in self.find("openai_probe_result", key=key, probe=probe) if s.value == 1]
        assert len(found) <= 1, found
        return found[0].labels["result"] if found else None


def scrape(url: str, path: str = "/metrics") -> Scrape:
    response = httpx.get(f"{url}{path}", timeout=5)
    assert response.status_code == 200, response.text
    return Scrape(response.text)
