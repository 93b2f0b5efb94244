"""YAML files people write (inventory, signatures, sidecar config), read strictly, with the
line of every field kept so that validation errors can say ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any

import yaml

FieldPath = tuple[str | int, ...]
"""Where a field stands in a document: keys and list positions from the root."""


_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_VALUE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                        ("null", "bool", "int", "float", "timestamp"))
"""Tags whose values are immutable: one object serves each spelling."""


class _Unusual(Exception):
    """A node the direct construction leaves to PyYAML's own (tag, key or duplicate)."""


class _StrictConstructor(yaml.constructor.SafeConstructor):
    """Safe construction with duplicate keys rejected."""

    def construct_document(self, node: yaml.Node) -> Any:
        """The document's data, as SafeConstructor builds it, in about a third of the time.

        The composed tree is fully resolved, so plain mappings, sequences and strings are
        built by walking it; every other scalar goes through :meth:`construct_object`.
        Anything else (another collection tag, a non-scalar or duplicate key, any error)
        makes PyYAML construct the whole document over again, so errors are its own.
        """
        try:
            return self._construct_plain(node, {})
        except Exception:  # PyYAML's own construction below raises its error, if any
            pass
        finally:
            self.constructed_objects = {}
        self.recursive_objects = {}  # what a scalar construction cut short left behind
        return super().construct_document(node)

    def _construct_plain(self, node: yaml.Node, built: dict[object, Any]) -> Any:
        # built: the collections made so far, so that an alias gets the anchor's object,
        # and the values of (tag, text) for scalars
        kind, tag = node.__class__, node.tag
        if kind is yaml.ScalarNode:
            if tag == _STR:
                return node.value
            if tag not in _VALUE_TAGS:
                return self.construct_object(node)
            key = (tag, node.value)  # an immutable value, made once per spelling
            if key not in built:
                built[key] = self.construct_object(node)
            return built[key]
        data = built.get(node)
        if data is not None:
            return data
        if kind is yaml.MappingNode and tag == _MAP:
            mapping: dict[Any, Any] = {}
            built[node] = mapping
            for key_node, value_node in node.value:
                if key_node.__class__ is not yaml.ScalarNode:
                    raise _Unusual
                key = self._construct_plain(key_node, built)
                if key in mapping:
                    raise _Unusual
                mapping[key] = self._construct_plain(value_node, built)
            return mapping
        if kind is yaml.SequenceNode and tag == _SEQ:
            sequence: list[Any] = []
            built[node] = sequence
            for child in node.value:
                sequence.append(self._construct_plain(child, built))
            return sequence
        raise _Unusual

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # refused as "found unhashable key" below
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _StrictResolver(yaml.resolver.Resolver):
    """YAML 1.2 booleans: ``true``/``false`` only (``NO`` stays Norway)."""

    def __init__(self) -> None:
        super().__init__()
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        """The tag Resolver gives, remembered per plain scalar: a large inventory repeats
        its keys, dates and codes thousands of times."""
        if kind is not yaml.ScalarNode or not implicit[0] or self.yaml_path_resolvers:
            return _resolve(self, kind, value, implicit)
        tag = self._plain_tags.get(value)
        if tag is None:
            tag = self._plain_tags[value] = _resolve(self, kind, value, implicit)
        return tag


_resolve: Callable[[_StrictResolver, type[yaml.Node], Any, tuple[bool, bool]], str] = (
    yaml.resolver.Resolver.resolve)


_BOOL = "tag:yaml.org,2002:bool"
_StrictResolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_StrictResolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class PureStrictLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,
                       yaml.composer.Composer, _StrictConstructor, _StrictResolver):
    """The strict loader in pure Python (where PyYAML was built without libyaml)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _StrictConstructor.__init__(self)
        _StrictResolver.__init__(self)


_CParser: Any = getattr(yaml, "CParser", None) or getattr(
    getattr(yaml, "cyaml", None), "CParser", None)
StrictLoader: type
if _CParser is not None:
    class _CStrictLoader(_CParser, _StrictConstructor, _StrictResolver):  # type: ignore[misc]
        """The strict loader over libyaml's parser: about 10x faster on large inventories,
        with the same nodes, marks and errors."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _StrictConstructor.__init__(self)
            _StrictResolver.__init__(self)

    StrictLoader = _CStrictLoader
else:  # pragma: no cover - PyYAML without libyaml
    StrictLoader = PureStrictLoader
"""SafeLoader rules with YAML 1.2 booleans and duplicate keys rejected (libyaml when
PyYAML has it, else :class:`PureStrictLoader`)."""


def line_of(root: yaml.Node, path: FieldPath) -> int:
    """Line (1-based) of the deepest node on ``path``; a last key points at its key (an
    unknown key, a bad scalar is shown on its own line)."""
    node = root
    for depth, part in enumerate(path, 1):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    child = key_node if depth == len(path) else value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


class YamlSyntaxError(ValueError):
    """A document that is not valid YAML: ``line`` (1-based, when known) and ``problem``."""

    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def parse_document(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and root node of one YAML document (``(None, None)`` when empty), read
    with :class:`StrictLoader`. Raises :class:`YamlSyntaxError` (its message as the pure
    Python parser words it, whichever parser found the error)."""
    try:
        return _parse(text, StrictLoader)
    except yaml.YAMLError as exc:
        error = exc
        if StrictLoader is not PureStrictLoader:
            try:
                _parse(text, PureStrictLoader)
            except yaml.YAMLError as pure:
                error = pure
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise YamlSyntaxError(problem, None if mark is None else mark.line + 1) from exc


def _parse(text: str, loader_type: type) -> tuple[Any, yaml.Node | None]:
    loader = loader_type(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    finally:
        loader.dispose()
    return data, root
