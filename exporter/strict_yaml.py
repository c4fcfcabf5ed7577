"""YAML a person wrote, read strictly: a key set twice is refused with its line, and aliases
may not expand a small file into a huge document (an "alias bomb"). Files are composed into
nodes (`compose_strict`) and read field by field by exporter/yaml_fields.py."""

from __future__ import annotations

from typing import Any

import yaml

# Nodes that aliases may add beyond the document's own: far more than any real configuration
# repeats (anchors for shared settings), far less than a bomb (9 aliases of 9 aliases of ...,
# a few hundred bytes expanding to billions of values). Each counted node costs at most a few
# hundred bytes wherever a value is walked, so the bound keeps that to a few MB.
MAX_ALIASED_NODES = 10_000
_ENDLESS = 2**62  # what a node that holds itself counts as

MERGE_TAG = "tag:yaml.org,2002:merge"
# libyaml parses a 10,000-key file in a fraction of the pure-Python parser's time.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(Exception):
    """Valid YAML that is refused; `line` and `column` count from 1. Never quotes a value."""

    def __init__(self, line: int, column: int, problem: str, fix: str) -> None:
        super().__init__(f"line {line}, column {column}: {problem} ({fix})")
        self.line, self.column, self.problem, self.fix = line, column, problem, fix


def _position(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _children(node: yaml.Node, merges_once: bool = False) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if not isinstance(node, yaml.MappingNode):
        return []
    if not merges_once:
        return [part for pair in node.value for part in pair]
    children: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag == MERGE_TAG and isinstance(value, yaml.SequenceNode):
            # Merged into this mapping once however often it is listed: count it once.
            children.append(key)
            children.extend({id(source): source for source in value.value}.values())
        else:
            children += (key, value)
    return children


def expanded_size(
    node: yaml.Node, sizes: dict[int, int], limit: int, merges_once: bool = False
) -> int:
    """How many nodes `node` stands for once every alias under it is written out, capped at
    limit + 1 (a node that contains itself is endless). Linear in the distinct nodes: `sizes`
    remembers each node's size by id, for nodes that stay alive while it is used.
    `merges_once`: a mapping listed several times under one merge key (`<<: [*a, *a]`) counts
    once, as exporter/yaml_fields.py merges it."""
    stack = [node]
    visiting: set[int] = set()  # the nodes being sized: the ancestors of the one on top
    while stack:
        current = stack[-1]
        key = id(current)
        if key in sizes:
            stack.pop()
            continue
        if isinstance(current, yaml.ScalarNode):  # most nodes: a leaf stands for itself
            sizes[key] = 1
            stack.pop()
            continue
        children = _children(current, merges_once)
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


def refuse_alias_bombs(root: yaml.Node, merges_once: bool = False) -> None:
    """Aliases may add at most MAX_ALIASED_NODES nodes to the document's own; YamlRefused at
    the first anchor repeated when they add more. Go's yaml.v2 counts every alias under a
    merge key (the web config); the configuration counts a mapping merged twice once."""
    sizes: dict[int, int] = {}  # after sizing the root: one entry per distinct node
    if expanded_size(root, sizes, _ENDLESS, merges_once) - len(sizes) > MAX_ALIASED_NODES:
        raise _bomb(_first_repeated(root, merges_once) or root)


def _first_repeated(root: yaml.Node, merges_once: bool) -> yaml.Node | None:
    """The first node reached twice: the anchor that is repeated."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            return current
        seen.add(id(current))
        stack.extend(reversed(_children(current, merges_once)))
    return None


def set_twice(key: yaml.Node, first: yaml.Node) -> YamlRefused:
    """A key written twice in one mapping, named by its line and its first line."""
    line, column = _position(key)
    earlier, _ = _position(first)
    name = str(key.value)
    shown = name if len(name) <= 40 else name[:40] + "..."
    return YamlRefused(
        line, column, f"{shown!r} is set twice (first at line {earlier})", "keep one of them"
    )


def refuse_duplicate_keys(node: yaml.MappingNode) -> None:
    """A key written twice in one mapping (merged `<<:` keys may be overridden, as YAML says)."""
    first: dict[tuple[str, object], yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        identity = (key_node.tag, key_node.value)
        if identity in first:
            raise set_twice(key_node, first[identity])
        first[identity] = key_node


class StrictSafeLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader (libyaml's when present) refusing duplicate keys in the mappings it
    builds, and numbers Python will not read, with their line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
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


def compose_strict(text: str) -> tuple[yaml.Node | None, StrictSafeLoader]:
    """The one document in `text`, composed (None when empty), with the loader that builds its
    values; alias bombs are refused before anything reads it. YamlRefused or yaml.YAMLError
    when it cannot be read."""
    loader = StrictSafeLoader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    # Without an anchor there is no alias: most files skip the count.
    if root is not None and "&" in text:
        refuse_alias_bombs(root, merges_once=True)
    return root, loader
