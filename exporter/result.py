"""What one probe run found: the value a prober returns, the runner records, and the store keeps.

Its own module, below the store: probes make results without knowing where they are kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.classify import Result
from exporter.models import ModelStatuses
from exporter.readings import NO_READINGS, Readings, readings


def _empty() -> Readings:
    # One shared empty mapping: a result is never changed once made, so all can share it.
    return NO_READINGS


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe run found. Holds no key: only its consequences."""

    probe: str
    result: Result
    duration: float = 0.0
    phases: Mapping[str, float] = field(default_factory=_empty)
    http_status: int = 0
    error_code: str = ""  # OpenAI's error.code, or the result class when OpenAI gave none
    message: str = ""  # for a person; already scrubbed of keys
    request_id: str = ""
    requests_made: int = 1
    retry_after: float | None = None
    ratelimit: Mapping[str, float] = field(default_factory=_empty)
    close_code: int | None = None
    started_at: float = field(default_factory=time.time)
    billed_tokens: int = 0  # tokens OpenAI counted for a billed probe (inference); 0 for free ones
    # REST: the watched models as this answer lists them; None when it had no model list.
    models: ModelStatuses | None = None
    billed_seconds: float = 0.0  # upstream time this probe is billed for (Live sessions)

    def __post_init__(self) -> None:
        # The store holds a result per key and probe until the next one: phases and rate
        # limits are kept as Readings (see exporter/readings.py), whatever mapping was given.
        object.__setattr__(self, "phases", readings(self.phases))
        object.__setattr__(self, "ratelimit", readings(self.ratelimit))

    @property
    def healthy(self) -> bool:
        return self.result is Result.OK
