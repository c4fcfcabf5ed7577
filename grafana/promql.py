"""PromQL the dashboards share: label selectors and the result/code -> runbook section label."""

from __future__ import annotations

import re

_LABEL_VALUE = re.compile(r"^#?[A-Za-z0-9_-]*$")


def selector(metric: str, *matchers: str) -> str:
    """`metric{m1, m2}`: the matchers are written out as given (`key=~"$key"`)."""
    return f"{metric}{{{', '.join(matchers)}}}"


def with_mapped_label(
    expr: str, source: str, target: str, mapping: dict[str, str], default: str
) -> str:
    """Add label `target` to `expr`, set from label `source` through `mapping`.

    Values missing from `mapping` get `default` (a value mapped to "" gets no label). Built from
    nested label_replace calls, innermost first, so later (specific) mappings win.
    """
    by_target: dict[str, list[str]] = {}
    for value, mapped in mapping.items():
        if not (_LABEL_VALUE.match(value) and _LABEL_VALUE.match(mapped)):
            raise ValueError(f"{value!r} -> {mapped!r} cannot be written into a PromQL regex")
        by_target.setdefault(mapped, []).append(value)
    result = f'label_replace({expr}, "{target}", "{default}", "{source}", ".+")'
    for mapped, values in sorted(by_target.items()):
        alternatives = "|".join(sorted(values))
        result = f'label_replace({result}, "{target}", "{mapped}", "{source}", "{alternatives}")'
    return result


def renamed_label(expr: str, source: str, target: str) -> str:
    """Copy label `source` to `target`, so two queries' labels do not collide in one table."""
    return f'label_replace({expr}, "{target}", "$1", "{source}", "(.*)")'


def last_increase_time(counter: str, window: str) -> str:
    """Per series of `counter`, the last time (Unix seconds) it increased or first appeared.

    Stepping by `window` and comparing each step with the one before it covers the range with no
    gaps; `unless ... offset` catches a series' first sample, which increase() never sees.
    """
    changed = f"({counter} - {counter} offset {window} > 0) or ({counter} unless {counter} offset {window})"
    return f"max_over_time(timestamp({changed})[$__range:{window}])"


def probe_matcher(probe: str) -> str:
    return f'probe="{probe}"'
