"""The strict YAML loader: libyaml and pure Python agree on data, lines and errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml

from egress.yaml_lines import (
    PureStrictLoader,
    StrictLoader,
    YamlSyntaxError,
    line_of,
    parse_document,
)

DOCUMENT = """\
site: {name: kul-1, country: NO, networks: [10.0.0.0/8]}
tenants:
  - id: t-1
    registered: 2026-05-02
    kyc: basic
    enabled: yes
    active: true
    gpus: 2400
    ratio: 0.5
    offboarded: null
"""


def _parse(loader_type: type, text: str) -> tuple[object, yaml.Node]:
    loader = loader_type(text)
    try:
        root = loader.get_single_node()
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def test_libyaml_and_pure_python_read_the_same_data_and_lines() -> None:
    fast, fast_root = _parse(StrictLoader, DOCUMENT)
    pure, pure_root = _parse(PureStrictLoader, DOCUMENT)
    assert fast == pure
    assert fast == {
        "site": {"name": "kul-1", "country": "NO", "networks": ["10.0.0.0/8"]},
        "tenants": [{"id": "t-1", "registered": __import__("datetime").date(2026, 5, 2),
                     "kyc": "basic", "enabled": "yes", "active": True, "gpus": 2400,
                     "ratio": 0.5, "offboarded": None}],
    }
    for path, line in ((("site", "country"), 1), (("tenants", 0, "gpus"), 8),
                       (("tenants", 0), 3), (("tenants", 0, "nothing"), 3)):
        assert line_of(fast_root, path) == line_of(pure_root, path) == line


def test_duplicate_keys_are_refused_by_both() -> None:
    text = "a: 1\nb: 2\na: 3\n"
    for loader_type in (StrictLoader, PureStrictLoader):
        with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
            _parse(loader_type, text)


def test_syntax_errors_carry_the_pure_python_wording_and_line() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_document("a: [1, 2\nb: 3\n")
    assert caught.value.problem == "expected ',' or ']', but got ':'"
    assert caught.value.line == 2


EVERY_KIND = """\
plain: kul-1
quoted: ["12", '2026-01-01', "true", "null", '0x1F']
ints: [0, -7, +3, 2400, 1_000, 0x1F, 0o17, 017, 0b101, "x", 190:20:30]
floats: [0.5, -1.5e+3, 1_000.5, .inf, -.Inf, .nan, 190:20:30.15]
nulls: [~, null, Null, NULL]
empty:
bools: [true, True, FALSE, false, yes, no, on, off, NO]
dates: [2026-05-02, 2026-02-28]
times: [2026-05-02T10:20:30Z, 2026-05-02 10:20:30.5+02:00, 2026-05-02t10:20:30,
        2026-05-02T10:20:30.123456-05:30]
explicit: [!!str 12, !!int "7", !!float "2", !!binary aGVsbG8=, !!null ""]
block: |
  two
  lines
folded: >
  one
  line
anchors:
  map: &m {a: 1, b: [x, y]}
  seq: &s [1, 2]
  day: &d 2026-01-01
  name: &n someone
  again: {map: *m, seq: *s, day: *d, name: *n}
nested: [[1, [2, {deep: [3, {deeper: z}]}]], {}, []]
1: int key
2026-01-01: date key
~: null key
2.5: float key
"": empty key
"""


def _typed(value: object) -> object:
    """``value`` with every type spelled out (``True == 1`` and ``nan != nan`` hide nothing)."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, repr(value))


def _regular(loader_type: type, text: str) -> object:
    """PyYAML's own construction (generators, flatten_mapping) with the strict mapping check."""
    loader = loader_type(text)
    try:
        return yaml.constructor.BaseConstructor.construct_document(loader, loader.get_single_node())
    finally:
        loader.dispose()


@pytest.mark.parametrize("loader_type", [StrictLoader, PureStrictLoader])
def test_direct_construction_builds_what_pyyaml_builds(loader_type: type) -> None:
    fast, _ = _parse(loader_type, EVERY_KIND)
    assert _typed(fast) == _typed(_regular(loader_type, EVERY_KIND))
    assert isinstance(fast, dict)
    assert fast["plain"] == "kul-1"
    assert fast["quoted"] == ["12", "2026-01-01", "true", "null", "0x1F"]
    assert _typed(fast["ints"]) == _typed([0, -7, 3, 2400, 1000, 31, "0o17", 15, 5, "x", 685230])
    assert fast["nulls"] == [None] * 4
    assert fast["empty"] is None
    assert _typed(fast["bools"]) == _typed([True, True, False, False, "yes", "no", "on", "off",
                                            "NO"])
    assert fast["dates"] == [date(2026, 5, 2), date(2026, 2, 28)]
    assert fast["times"][0] == datetime(2026, 5, 2, 10, 20, 30, tzinfo=UTC)
    assert fast["times"][2] == datetime(2026, 5, 2, 10, 20, 30)
    assert _typed(fast["explicit"]) == _typed(["12", 7, 2.0, b"hello", None])
    assert (fast["block"], fast["folded"]) == ("two\nlines\n", "one line\n")
    assert (fast[1], fast[date(2026, 1, 1)], fast[None], fast[2.5], fast[""]) == (
        "int key", "date key", "null key", "float key", "empty key")
    anchors = fast["anchors"]
    # an alias is the anchor's very object, as in PyYAML
    assert anchors["again"]["map"] is anchors["map"]
    assert anchors["again"]["seq"] is anchors["seq"]
    assert anchors["again"]["day"] is anchors["day"]
    assert anchors["again"]["name"] is anchors["name"]


@pytest.mark.parametrize(
    "text",
    [
        "a: &r [1, *r]\n",  # recursive sequence
        "a: &r {self: *r, n: 1}\n",  # recursive mapping
    ],
)
def test_recursive_anchors_point_at_themselves(text: str) -> None:
    data, _ = parse_document(text)
    inner = data["a"]
    assert (inner[1] if isinstance(inner, list) else inner["self"]) is inner
    regular = _regular(StrictLoader, text)
    assert isinstance(regular, dict)
    assert repr(regular) == repr(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # collection tags the direct walk leaves to PyYAML
        ("s: !!set {a, b}\n", {"s": {"a", "b"}}),
        ("o: !!omap [{a: 1}, {b: 2}]\n", {"o": [("a", 1), ("b", 2)]}),
        ("p: !!pairs [{a: 1}, {a: 2}]\n", {"p": [("a", 1), ("a", 2)]}),
    ],
)
def test_other_collection_tags_are_built_by_pyyaml(text: str, expected: object) -> None:
    data, _ = parse_document(text)
    assert data == expected
    assert data == _regular(StrictLoader, text)


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a'", 3),
        # PyYAML checks a mapping's keys before the mappings inside it: line 6, not 4
        ("a:\n  b:\n    c: 1\n    c: 2\nd: 1\nd: 2\n", "duplicate key 'd'", 6),
        ("a:\n  - {x: 1, y: 2, x: 3}\n", "duplicate key 'x'", 2),
        ("1: a\n2: b\n1.0: c\n", "duplicate key 1.0", 3),
        ("true: a\n1: b\n", "duplicate key 1", 2),
        ("base: &b {a: 1}\nmore:\n  <<: *b\n", "could not determine a constructor for the tag "
         "'tag:yaml.org,2002:merge'", 3),
        ("a: !custom 1\n", "could not determine a constructor for the tag '!custom'", 1),
        ("a: !custom {b: 1}\n", "could not determine a constructor for the tag '!custom'", 1),
        ("? [a, b]\n: c\n", "found unhashable key", 1),
        ("a: !!str {b: 1}\n", "expected a scalar node, but found mapping", 1),
    ],
)
def test_construction_errors_are_pyyaml_s_with_their_line(
    text: str, problem: str, line: int
) -> None:
    for loader_type in (StrictLoader, PureStrictLoader):
        with pytest.raises(yaml.MarkedYAMLError) as regular:
            _regular(loader_type, text)
        assert regular.value.problem == problem
        assert regular.value.problem_mark is not None
        assert regular.value.problem_mark.line + 1 == line
    with pytest.raises(YamlSyntaxError) as caught:
        parse_document(text)
    assert (caught.value.problem, caught.value.line) == (problem, line)


_UNREMEMBERED: Any = yaml.resolver.Resolver.resolve  # PyYAML's own, every time
_PLAIN = ["12", "0x1F", "1_0", "1.5", ".nan", "~", "null", "", "true", "NO", "yes", "2026-01-01",
          "2026-01-01T00:00:00Z", "2026-13-01", "<<", "=", "kul-1", "10.0.0.0/8"]


@pytest.mark.parametrize("loader_type", [StrictLoader, PureStrictLoader])
def test_remembered_tags_are_the_resolver_s(loader_type: type) -> None:
    loader = loader_type("")
    try:
        plain, quoted = (True, False), (False, True)
        for value in _PLAIN * 2:  # the second time from memory
            tag = _UNREMEMBERED(loader, yaml.ScalarNode, value, plain)
            assert loader.resolve(yaml.ScalarNode, value, plain) == tag
            assert loader.resolve(yaml.ScalarNode, value, quoted) == "tag:yaml.org,2002:str"
        assert [loader.resolve(yaml.ScalarNode, v, plain).rsplit(":", 1)[1]
                for v in ("12", "NO", "true", "", "2026-01-01", "kul-1")] == [
            "int", "str", "bool", "null", "timestamp", "str"]
    finally:
        loader.dispose()
    data, _ = parse_document("[12, '12', 12, true, 'true', true]\n")
    assert _typed(data) == _typed([12, "12", 12, True, "true", True])


def test_equal_spellings_keep_pyyaml_s_duplicate_rules() -> None:
    # PyYAML makes every .nan the same object, so that two .nan keys are a duplicate
    for text, problem in (
        ("{.nan: 1, .NaN: 2}\n", "duplicate key nan"),
        ("{2026-01-01T00:00:00Z: a, 2026-01-01 00:00:00+00:00: b}\n",
         "duplicate key datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)"),
    ):
        with pytest.raises(yaml.MarkedYAMLError, match=re.escape(problem)):
            _regular(StrictLoader, text)
        with pytest.raises(YamlSyntaxError) as caught:
            parse_document(text)
        assert (caught.value.problem, caught.value.line) == (problem, 1)
