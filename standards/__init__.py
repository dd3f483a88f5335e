"""The draft local standard DB3202/T XXXX—2026: its machine-readable parts, loaded as frozen values.

The files beside this module are the single source of truth; the spec's tables are generated from
them (``python -m standards.render``) and the exchange format and validator read them here:

- ``codelists.json``: code lists (marking classes, colours, road-edge kinds, lane directions,
  arrow kinds, sign shapes, sign classes, accuracy grades), see :func:`code_lists`;
- ``rules.json``: the rule catalogue (ID, clause, severity, description in English and Chinese,
  parameters), see :func:`rule_catalogue`;
- ``xsd/xsmap-1.0.xsd``: the XML schema of the exchange format, see :data:`XSD_PATH`.

>>> code_lists()["marking_kinds"].codes[:3]
('solid', 'dashed', 'double_solid')
>>> accuracy_grade("A").absolute_m, accuracy_grade("A").absolute_sigma
(0.5, 2)
>>> rule_catalogue().rule("XS-ID-001").severity
'error'
>>> sign_class("stop").shape
'octagon'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CODELISTS_PATH",
    "FILE_SUFFIX",
    "FORMAT_VERSION",
    "NAMESPACE",
    "RULES_PATH",
    "STANDARD_NUMBER",
    "XSD_PATH",
    "AccuracyGrade",
    "CodeEntry",
    "CodeList",
    "Rule",
    "RuleCatalogue",
    "SignClassEntry",
    "accuracy_grade",
    "code_lists",
    "codelists_version",
    "rule_catalogue",
    "sign_class",
]

HERE = Path(__file__).resolve().parent
CODELISTS_PATH = HERE / "codelists.json"
RULES_PATH = HERE / "rules.json"
XSD_PATH = HERE / "xsd" / "xsmap-1.0.xsd"

STANDARD_NUMBER = "DB3202/T XXXX—2026"
#: The exchange format's XML namespace, version and file-name suffix (spec clause 8.1).
NAMESPACE = "urn:db3202:hdmap:xsmap:1.0"
FORMAT_VERSION = "1.0"
FILE_SUFFIX = ".xsmap.xml"


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """One code of a code list: the value written in files, and its names."""

    code: str
    name_zh: str
    name_en: str
    extra: MappingProxyType  # the list's further columns (str -> value)


@dataclass(frozen=True, slots=True)
class SignClassEntry:
    """A GB 5768.2 sign category with its typical shape, colours and OpenDRIVE type/subtype."""

    code: str
    name_zh: str
    name_en: str
    shape: str  # a sign_shapes code, "" when there is no typical shape
    colors_zh: str
    colors_en: str
    opendrive_type: str
    opendrive_subtype: str  # "-1" where GB 5768.2 has no single fixed sign


@dataclass(frozen=True, slots=True)
class AccuracyGrade:
    """An accuracy grade: absolute and relative accuracy in metres at their sigma levels."""

    code: str
    name_zh: str
    name_en: str
    absolute_m: float
    absolute_sigma: int
    relative_m: float
    relative_sigma: int
    anchor: str  # where the figures come from


@dataclass(frozen=True, slots=True)
class CodeList:
    """A named code list and its entries in the file's order."""

    name: str
    title_en: str
    title_zh: str
    entries: tuple[CodeEntry, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.entries)

    def __contains__(self, code: object) -> bool:
        return code in self.codes


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the catalogue."""

    id: str
    clause: str
    severity: str  # "error" or "warning"
    description_en: str
    description_zh: str
    params: MappingProxyType
    needs_truth: bool = False


@dataclass(frozen=True, slots=True)
class RuleCatalogue:
    """The rule catalogue: its version and rules in the file's order."""

    standard: str
    version: str
    rules: tuple[Rule, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"no rule {rule_id!r} in the catalogue")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def code_lists() -> MappingProxyType:
    """Every code list by name (``"marking_kinds"``, ``"sign_classes"``, ...), in file order.

    >>> sorted(code_lists())[:2]
    ['accuracy_grades', 'arrow_kinds']
    """
    lists = {}
    for name, body in _load(CODELISTS_PATH)["lists"].items():
        entries = tuple(
            CodeEntry(
                e["code"],
                e["name_zh"],
                e["name_en"],
                MappingProxyType({k: v for k, v in e.items() if k not in _NAME_KEYS}),
            )
            for e in body["entries"]
        )
        lists[name] = CodeList(name, body["title_en"], body["title_zh"], entries)
    return MappingProxyType(lists)


_NAME_KEYS = frozenset({"code", "name_zh", "name_en"})


def codelists_version() -> str:
    """Version of ``codelists.json``."""
    return str(_load(CODELISTS_PATH)["version"])


def accuracy_grade(code: str) -> AccuracyGrade:
    """The accuracy grade ``code`` ("A", "B"); KeyError when it is not in the code list.

    >>> accuracy_grade("B").relative_m
    0.2
    >>> accuracy_grade("Z")
    Traceback (most recent call last):
    ...
    KeyError: "no accuracy grade 'Z' (known: A, B)"
    """
    for e in code_lists()["accuracy_grades"].entries:
        if e.code == code:
            x = e.extra
            return AccuracyGrade(
                e.code,
                e.name_zh,
                e.name_en,
                float(x["absolute_m"]),
                int(x["absolute_sigma"]),
                float(x["relative_m"]),
                int(x["relative_sigma"]),
                str(x["anchor"]),
            )
    known = ", ".join(code_lists()["accuracy_grades"].codes)
    raise KeyError(f"no accuracy grade {code!r} (known: {known})")


def sign_class(code: str) -> SignClassEntry:
    """The sign class ``code`` with its shape, colours and OpenDRIVE type and subtype.

    >>> sign_class("guide").opendrive_subtype
    '-1'
    """
    for e in code_lists()["sign_classes"].entries:
        if e.code == code:
            x = e.extra
            return SignClassEntry(
                e.code,
                e.name_zh,
                e.name_en,
                x["shape"],
                x["colors_zh"],
                x["colors_en"],
                x["opendrive_type"],
                x["opendrive_subtype"],
            )
    raise KeyError(f"no sign class {code!r}")


@lru_cache(maxsize=1)
def rule_catalogue() -> RuleCatalogue:
    """The rule catalogue from ``rules.json``.

    >>> len(rule_catalogue().ids) == len(set(rule_catalogue().ids))
    True
    """
    doc = _load(RULES_PATH)
    rules = tuple(
        Rule(
            r["id"],
            r["clause"],
            r["severity"],
            r["description_en"],
            r["description_zh"],
            MappingProxyType(dict(r.get("params", {}))),
            bool(r.get("needs_truth", False)),
        )
        for r in doc["rules"]
    )
    return RuleCatalogue(doc["standard"], str(doc["version"]), rules)
