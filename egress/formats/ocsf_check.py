"""Check an OCSF event against the OCSF schema files (the ocsf-schema repository layout).

:class:`OcsfSchema` reads ``dictionary.json``, ``categories.json``, ``events/**`` and
``objects/*.json`` (and the ``profiles/`` they include), resolves ``extends`` chains and
``$include`` d profiles, and :meth:`OcsfSchema.check` lists every problem of one event:
unknown attributes, missing required ones (profile attributes only when the profile is named in
``metadata.profiles``), wrong JSON types (``timestamp_t`` is epoch milliseconds), enum values
not in the enum, sibling captions that disagree with their id, ``at_least_one`` constraints,
and ``type_uid``/``category_uid`` (and their names) that do not follow from
``class_uid``/``activity_id``.
Attributes of type ``object``/``json_t`` (``unmapped``, ``data``) are not looked into.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

Attrs = dict[str, dict[str, Any]]
# Their enums are filled in from the categories and classes (checked on their own).
_DERIVED = frozenset({"category_uid", "class_uid", "type_uid"})


def _load(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **over}
    if "enum" in base and "enum" in over:
        out["enum"] = {**base["enum"], **over["enum"]}
    return out


class OcsfSchema:
    """The OCSF schema in ``root`` (a copy of the ocsf-schema repository's data files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version: str = _load(root / "version.json")["version"]
        dictionary = _load(root / "dictionary.json")
        self.dictionary: Attrs = dictionary["attributes"]
        self.types: Attrs = dictionary["types"]["attributes"]
        categories = _load(root / "categories.json")["attributes"]
        self.categories: dict[str, int] = {name: c["uid"] for name, c in categories.items()}
        self.category_captions = {name: c["caption"] for name, c in categories.items()}
        self.events = {d["name"]: d for d in map(_load, sorted(root.glob("events/**/*.json")))}
        self.objects = {p.stem: _load(p) for p in sorted((root / "objects").glob("*.json"))}

    # -- resolution --------------------------------------------------------------------------

    def _own(self, spec: dict[str, Any]) -> Attrs:
        attrs: Attrs = {}
        for name, value in spec.get("attributes", {}).items():
            if name == "$include":
                for path in value:
                    profile = _load(self.root / path)
                    for pname, pattr in profile["attributes"].items():
                        attrs[pname] = _merge(attrs.get(pname, {}),
                                              {"profile": profile["name"], **pattr})
            else:
                attrs[name] = _merge(attrs.get(name, {}), value)
        return attrs

    def _resolve(self, spec: dict[str, Any], table: dict[str, dict[str, Any]]) -> Attrs:
        chain = [spec]
        while "extends" in chain[-1] and chain[-1]["extends"] in table:
            chain.append(table[chain[-1]["extends"]])
        attrs: Attrs = {}
        for item in reversed(chain):
            for name, value in self._own(item).items():
                attrs[name] = _merge(attrs.get(name, {}), value)
        return {name: _merge(self.dictionary.get(name, {}), value)
                for name, value in attrs.items()}

    def _constraints(self, spec: dict[str, Any], table: dict[str, dict[str, Any]]
                     ) -> list[list[str]]:
        out: list[list[str]] = []
        item: dict[str, Any] | None = spec
        while item is not None:
            if item.get("constraints", {}).get("at_least_one"):
                out.append(item["constraints"]["at_least_one"])
                break  # the nearest definition wins
            item = table.get(item.get("extends", ""))
        return out

    def event_class(self, class_uid: int) -> dict[str, Any] | None:
        """The event class with this ``class_uid`` (category uid * 1000 + class uid)."""
        for spec in self.events.values():
            category = self._category_of(spec)
            if "uid" in spec and category is not None and (
                    self.categories[category] * 1000 + spec["uid"] == class_uid):
                return spec
        return None

    def _category_of(self, spec: dict[str, Any]) -> str | None:
        item: dict[str, Any] | None = spec
        while item is not None:
            if item.get("category") in self.categories:
                return str(item["category"])
            item = self.events.get(item.get("extends", ""))
        return None

    # -- checks ------------------------------------------------------------------------------

    def check(self, event: dict[str, Any]) -> list[str]:
        """Every problem of ``event`` as ``path: what`` (empty when it conforms)."""
        spec = self.event_class(event.get("class_uid", -1))
        if spec is None:
            return [f"class_uid: no event class {event.get('class_uid')!r}"]
        problems: list[str] = []
        profiles = set(event.get("metadata", {}).get("profiles", []))
        category = self._category_of(spec)
        assert category is not None
        if event.get("category_uid") != self.categories[category]:
            problems.append(f"category_uid: {event.get('category_uid')!r} is not "
                            f"{self.categories[category]} ({category})")
        caption = self.category_captions[category]
        if event.get("category_name", caption) != caption:
            problems.append(f"category_name: {event['category_name']!r} is not {caption!r}")
        if event.get("type_uid") != event["class_uid"] * 100 + event.get("activity_id", 0):
            problems.append("type_uid: not class_uid * 100 + activity_id")
        if event.get("class_name", spec["caption"]) != spec["caption"]:
            problems.append(f"class_name: {event['class_name']!r} is not {spec['caption']!r}")
        activity = self._resolve(spec, self.events).get("activity_id", {}).get("enum", {}).get(
            str(event.get("activity_id")), {}).get("caption")
        type_name = f"{spec['caption']}: {activity}"
        if activity is not None and event.get("type_name", type_name) != type_name:
            problems.append(f"type_name: {event['type_name']!r} is not {type_name!r}")
        attrs = {name: {k: v for k, v in attr.items() if k != "enum" or name not in _DERIVED}
                 for name, attr in self._resolve(spec, self.events).items()}
        self._check_attrs(event, attrs, self._constraints(spec, self.events), profiles, "",
                          problems)
        return problems

    def _check_attrs(self, value: dict[str, Any], attrs: Attrs, constraints: list[list[str]],
                     profiles: set[str], path: str, problems: list[str]) -> None:
        for name, spec in attrs.items():
            profile = spec.get("profile")
            active = profile is None or profile in profiles
            if spec.get("requirement") == "required" and active and name not in value:
                problems.append(f"{path}{name}: required attribute missing")
        for group in constraints:
            if not any(name in value for name in group):
                problems.append(f"{path or '.'}: needs at least one of {', '.join(group)}")
        for name, item in value.items():
            attr = attrs.get(name)
            if attr is None:
                problems.append(f"{path}{name}: not an attribute here")
                continue
            if attr.get("profile") is not None and attr["profile"] not in profiles:
                problems.append(f"{path}{name}: profile {attr['profile']} not applied")
            if attr.get("is_array"):
                if not isinstance(item, list):
                    problems.append(f"{path}{name}: expected an array")
                    continue
                for i, element in enumerate(item):
                    self._check_value(element, attr, profiles, f"{path}{name}[{i}]", problems)
            else:
                self._check_value(item, attr, profiles, f"{path}{name}", problems)
            sibling = attr.get("sibling")
            if "enum" in attr and sibling in value and str(item) != "99":
                caption = attr["enum"].get(str(item), {}).get("caption")
                if caption is not None and value[sibling] != caption:
                    problems.append(f"{path}{sibling}: {value[sibling]!r} is not {caption!r}")

    def _check_value(self, item: Any, attr: dict[str, Any], profiles: set[str], path: str,
                     problems: list[str]) -> None:
        kind = attr.get("type", "")
        if kind in ("object", "json_t"):
            return
        if kind in self.objects:
            if not isinstance(item, dict):
                problems.append(f"{path}: expected a {kind} object")
                return
            spec = self.objects[kind]
            self._check_attrs(item, self._resolve(spec, self.objects),
                              self._constraints(spec, self.objects), profiles, path + ".",
                              problems)
            return
        if kind not in self.types:
            problems.append(f"{path}: unknown type {kind!r}")
            return
        base = self.types[kind].get("type", kind)
        ok = {
            "string_t": isinstance(item, str), "boolean_t": isinstance(item, bool),
            "integer_t": isinstance(item, int) and not isinstance(item, bool),
            "long_t": isinstance(item, int) and not isinstance(item, bool),
            "float_t": isinstance(item, int | float) and not isinstance(item, bool),
        }.get(base, True)
        if not ok:
            problems.append(f"{path}: {item!r} is not {kind}")
            return
        regex = self.types[kind].get("regex")
        if regex and isinstance(item, str) and not re.fullmatch(regex, item):
            problems.append(f"{path}: {item!r} does not match {kind}")
        if "enum" in attr and str(item) not in attr["enum"]:
            problems.append(f"{path}: {item!r} not in enum {sorted(attr['enum'])}")
