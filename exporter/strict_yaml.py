"""YAML a person wrote, read strictly: a key set twice is refused with its line, and aliases
may not expand a small file into a huge document (an "alias bomb")."""

from __future__ import annotations

from typing import Any

import yaml

# Nodes that aliases may add beyond the document's own: far more than any real configuration
# repeats (anchors for shared settings), far less than a bomb (9 aliases of 9 aliases of ...,
# a few hundred bytes expanding to billions of values). Each counted node costs at most a few
# hundred bytes wherever a value is walked, so the bound keeps that to a few MB.
MAX_ALIASED_NODES = 10_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
# libyaml parses a 10,000-key file in a fraction of the pure-Python parser's time.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(Exception):
    """Valid YAML that is refused; `line` and `column` count from 1. Never quotes a value."""

    def __init__(self, line: int, column: int, problem: str, fix: str) -> None:
        super().__init__(f"line {line}, column {column}: {problem} ({fix})")
        self.line, self.column, self.problem, self.fix = line, column, problem, fix


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(node: yaml.Node, sizes: dict[int, int], limit: int) -> int:
    """How many nodes `node` stands for once every alias under it is written out, capped at
    limit + 1 (a node that contains itself is endless). Linear in the distinct nodes: `sizes`
    remembers each node's size by id, for nodes that stay alive while it is used."""
    stack = [node]
    visiting: set[int] = set()  # the nodes being sized: the ancestors of the one on top
    while stack:
        current = stack[-1]
        key = id(current)
        if key in sizes:
            stack.pop()
            continue
        children = _children(current)
        if key not in visiting:
            visiting.add(key)
            for child in children:
                if id(child) in visiting:
                    return limit + 1  # an alias to an enclosing node: endless
                if id(child) not in sizes:
                    stack.append(child)
            continue
        sizes[key] = min(limit + 1, 1 + sum(sizes[id(child)] for child in children))
        visiting.discard(key)
        stack.pop()
    return sizes[id(node)]


def _bomb(node: yaml.Node) -> YamlRefused:
    line, column = _position(node)
    return YamlRefused(
        line,
        column,
        f"aliases expand to more than {MAX_ALIASED_NODES} values (the anchor here is repeated"
        " too often, or holds itself)",
        "write the values out, or repeat the anchor less",
    )


def refuse_alias_bombs(root: yaml.Node) -> None:
    """For a composed document (the web config): aliases may add at most MAX_ALIASED_NODES."""
    distinct: set[int] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        if id(current) not in distinct:
            distinct.add(id(current))
            stack.extend(_children(current))
    limit = len(distinct) + MAX_ALIASED_NODES
    if expanded_size(root, {}, limit) > limit:
        repeated = _first_repeated(root)
        raise _bomb(repeated or root)


def _first_repeated(root: yaml.Node) -> yaml.Node | None:
    """The first node reached twice: the anchor that is repeated."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            return current
        seen.add(id(current))
        stack.extend(reversed(_children(current)))
    return None


def refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """A key written twice in one mapping (merged `<<:` keys may be overridden, as YAML says)."""
    first: dict[tuple[str, object], yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        identity = (key_node.tag, key_node.value)
        if identity in first:
            line, column = _position(key_node)
            earlier, _ = _position(first[identity])
            name = str(key_node.value)
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise YamlRefused(
                line,
                column,
                f"{shown!r} is set twice (first at line {earlier})",
                "keep one of them",
            )
        first[identity] = key_node


class StrictSafeLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader (libyaml's when present) refusing duplicate keys and alias bombs.

    Counting costs nothing without aliases: an alias is the only way a node already built is
    asked for again, and only then is its size worked out (once per node).
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._aliased = 0

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            self._aliased += expanded_size(node, self._sizes, MAX_ALIASED_NODES)
            if self._aliased > MAX_ALIASED_NODES:
                raise _bomb(node)
        try:
            return super().construct_object(node, deep)
        except ValueError as error:  # a number of over 4300 digits, say: Python refuses it
            line, column = _position(node)
            problem = str(error).split(":", 1)[0][:100]
            raise YamlRefused(
                line, column, f"a value cannot be read ({problem})", "shorten it"
            ) from None

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            refuse_duplicate_keys(node)
        return super().construct_mapping(node, deep)


def load_strict(text: str | bytes) -> Any:
    """One YAML document as Python values; YamlRefused or yaml.YAMLError when it cannot be."""
    return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a safe loader
