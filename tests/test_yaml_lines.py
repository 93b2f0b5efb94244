"""The strict YAML loader: libyaml and pure Python agree on data, lines and errors."""

from __future__ import annotations

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
