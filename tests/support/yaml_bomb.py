"""A YAML alias bomb: a short text whose aliases expand to billions of values."""

from __future__ import annotations


def bomb(anchor_levels: int = 10) -> str:
    """The bomb as YAML text: 9 aliases of 9 aliases of ... of 9 strings, 9**levels values."""
    levels = ["&a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]"] + [
        f"&a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, anchor_levels)
    ]
    return "[" + ", ".join(levels) + "]"
