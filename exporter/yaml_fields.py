"""One mapping of a YAML file read field by field, for the configuration and the web
configuration alike: unknown fields refused naming the known ones, each field read by a
converter, every error naming the file (and line), the field and the fix.

It walks composed nodes (`strict_yaml.compose_strict` has already refused alias bombs), so each
value keeps its line and its text. The one thing the two files differ in is how YAML is read:
the configuration as PyYAML reads it (`PyYaml`), the web configuration as Go's yaml.v2 does
(`GoYamlV2`), so that one file works with `promtool check web-config` too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any, Protocol

import yaml

from exporter.strict_yaml import MERGE_TAG, set_twice

NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_BOOL_TAG = "tag:yaml.org,2002:bool"
EXCERPT_CHARS = 40  # of text from the file quoted back in a message
_WHERE_CHARS = 200


class FieldProblem(ValueError):
    """Raised by a converter whose fix depends on what is wrong; a plain ValueError (or
    TypeError) is reported with the fix the field was read with."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def excerpt(text: str) -> str:
    """Text from the file (a value, a field name) as a message quotes it: at most 40
    characters of it, so a bomb or a book is not printed."""
    return repr(text) if len(text) <= EXCERPT_CHARS else repr(text[:EXCERPT_CHARS]) + "..."


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


class Dialect(Protocol):
    """How a file's YAML reads: the one difference between the files this module walks."""

    def key(self, node: yaml.Node) -> str:
        """A mapping key as a field name; FieldProblem when it cannot be one."""

    def value(self, node: yaml.Node) -> Any:
        """What a converter is given for a field's value node."""

    def is_mapping(self, node: yaml.Node) -> bool: ...

    def is_sequence(self, node: yaml.Node) -> bool: ...

    def not_a_mapping(self, node: yaml.Node) -> tuple[str, str]:
        """The problem and fix for a value where a mapping belongs."""

    def set_twice(self, file: YamlFile, where: str, key: yaml.Node, first: yaml.Node) -> Exception:
        """The error for a field written twice in one mapping."""


class PyYaml:
    """PyYAML's reading (YAML 1.1 with PyYAML's resolver): converters get Python values, built
    by the strict loader that composed the file (`strict_yaml.StrictSafeLoader`)."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self._loader = loader

    def key(self, node: yaml.Node) -> str:
        return str(self.value(node))  # `1:` is the field "1", as str() of the key always was

    def value(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
            return node.value  # most values: no constructor to go through
        return self._loader.construct_object(node, deep=True)

    def is_mapping(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG

    def is_sequence(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG

    def not_a_mapping(self, node: yaml.Node) -> tuple[str, str]:
        # Built first: a tag PyYAML has no constructor for is refused as invalid YAML.
        kind = type(self.value(node)).__name__
        return f"must be a mapping, got {kind}", "write it as `field: value` lines"

    def set_twice(self, file: YamlFile, where: str, key: yaml.Node, first: yaml.Node) -> Exception:
        return set_twice(key, first)


class GoYamlV2:
    """Go's yaml.v2 UnmarshalStrict, as exporter-toolkit reads its file: a value is read as the
    type its field has (`string`, `boolean`, `string_list`), from the node's text, and null
    reads as the type's zero value. Converters get the node."""

    # yaml.v2 reads these plain scalars as booleans (YAML 1.1), y and n included, unlike PyYAML.
    _TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
    _FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})

    def key(self, node: yaml.Node) -> str:
        return self.string(node)

    def value(self, node: yaml.Node) -> Any:
        return node

    def is_mapping(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.MappingNode)

    def is_sequence(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.SequenceNode)

    def not_a_mapping(self, node: yaml.Node) -> tuple[str, str]:
        return f"expected a mapping, got {self.kind(node)}", "write key: value lines"

    def set_twice(self, file: YamlFile, where: str, key: yaml.Node, first: yaml.Node) -> Exception:
        return file.error(key, where, "set twice", "keep one of them")

    @staticmethod
    def kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        return "a single value"

    def string(self, node: yaml.Node) -> str:
        if is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            raise FieldProblem(f"expected a string, got {self.kind(node)}", "quote it")
        return str(node.value)

    def boolean(self, node: yaml.Node) -> bool:
        if is_null(node):
            return False
        if isinstance(node, yaml.ScalarNode) and (node.style is None or node.tag == _BOOL_TAG):
            if node.value in self._TRUE:
                return True
            if node.value in self._FALSE:
                return False
        raise FieldProblem("expected true or false", "write true or false, unquoted")

    def string_list(self, node: yaml.Node) -> list[str | None]:
        """The items' text; None for a null item (Go's "" where that differs from no item)."""
        if is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise FieldProblem(f"expected a list, got {self.kind(node)}", "write it as [a, b]")
        return [None if is_null(item) else self.string(item) for item in node.value]


GO_YAML_V2 = GoYamlV2()


class YamlFile:
    """A composed file being read: its path, its dialect, the exception its errors raise, and
    `screen(field, value)`: what every value read is refused for (a FieldProblem) before its
    converter sees it."""

    def __init__(
        self,
        path: str,
        dialect: Dialect,
        error_type: Callable[[str], Exception],
        screen: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.path, self.dialect, self._error_type = path, dialect, error_type
        self.screen = screen

    def error(self, node: yaml.Node | None, where: str, problem: str, fix: str) -> Exception:
        """`path[:line]: where: problem (fix)`; `where` is "top level" for the whole file."""
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = where or "top level"
        if len(where) > _WHERE_CHARS:  # field names come from the file: an excerpt, as values
            where = where[:_WHERE_CHARS] + "..."
        fix_text = f" ({fix})" if fix else ""
        return self._error_type(f"{self.path}{line}: {where}: {problem}{fix_text}")


class Fields:
    """One mapping of the file at a dotted path (`keys[2].realtime`; "" for the top level).

    Null reads as an empty mapping. Merge keys (`<<:`) are applied as YAML says: fields written
    here win over merged ones, an earlier merged mapping over a later one. A field written twice
    here, or one not in `allowed` (None: any field, such as user names), is refused at once.
    """

    def __init__(
        self, file: YamlFile, node: yaml.Node | None, path: str, allowed: Collection[str] | None
    ) -> None:
        self.file, self.node, self.path = file, node, path
        self._values: dict[str, Any] = {}  # read once: a converter may be asked twice
        self._fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}  # name -> (key, value)
        if node is None or is_null(node):
            return
        self._fields = self._pairs(node, path, set())
        if allowed is not None:
            for name, (key_node, _) in self._fields.items():
                if name not in allowed:
                    shown = name if len(name) <= EXCERPT_CHARS else excerpt(name)
                    raise file.error(
                        key_node,
                        self._where(shown),
                        "unknown field",
                        f"remove it, or use one of: {', '.join(sorted(allowed))}",
                    )

    def _pairs(
        self, node: yaml.Node, where: str, merged: set[int]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        dialect = self.file.dialect
        if not dialect.is_mapping(node):
            problem, fix = dialect.not_a_mapping(node)
            raise self.file.error(node, where, problem, fix)
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        sources: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                many = isinstance(value_node, yaml.SequenceNode)
                sources.extend(value_node.value if many else [value_node])
                continue
            try:
                name = dialect.key(key_node)
            except FieldProblem as problem:
                raise self.file.error(
                    key_node, f"{where or 'top level'} key", problem.problem, problem.fix
                ) from None
            if name in own:
                raise dialect.set_twice(self.file, self._where(name), key_node, own[name][0])
            own[name] = (key_node, value_node)
        pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            if id(source) not in merged:  # a mapping merged twice adds nothing the second time
                merged.add(id(source))
                for name, pair in self._pairs(source, where, merged).items():
                    pairs.setdefault(name, pair)
        pairs.update(own)
        return pairs

    def _where(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path and name else self.path or name

    def names(self) -> Iterator[str]:
        """The fields present, in the order written (merged ones first)."""
        return iter(self._fields)

    def has(self, name: str) -> bool:
        return name in self._fields

    def value_node(self, name: str) -> yaml.Node | None:
        pair = self._fields.get(name)
        return pair[1] if pair else None

    def value(self, name: str) -> Any:
        """The field's value as the dialect reads it; None when absent."""
        node = self.value_node(name)
        if node is None:
            return None
        if name not in self._values:
            self._values[name] = self.file.dialect.value(node)
        return self._values[name]

    def child(self, name: str, allowed: Collection[str] | None) -> Fields:
        """The mapping in field `name` (empty when absent or null)."""
        return Fields(self.file, self.value_node(name), self._where(name), allowed)

    def sequence(self, name: str) -> list[yaml.Node] | None:
        """The items of a list field; None when the field is absent or not a list."""
        node = self.value_node(name)
        if node is None or not self.file.dialect.is_sequence(node):
            return None
        return list(node.value)

    def error(self, name: str, problem: str, fix: str) -> Exception:
        """An error about field `name` ("" for the mapping), at its line when present."""
        return self.file.error(self.value_node(name) or self.node, self._where(name), problem, fix)

    def get(self, name: str, convert: Callable[[Any], Any], default: Any, fix: str = "") -> Any:
        """The field converted, or `default` when absent; a converter's ValueError or TypeError
        becomes this field's error with `fix` (a FieldProblem brings its own fix)."""
        if name not in self._fields:
            return default
        value = self.value(name)
        try:
            if self.file.screen is not None:
                self.file.screen(name, value)
            return convert(value)
        except FieldProblem as problem:
            raise self.error(name, problem.problem, problem.fix) from None
        except (TypeError, ValueError) as problem:
            raise self.error(name, str(problem), fix) from None
