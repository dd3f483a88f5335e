"""Generate the spec's tables from the machine-readable files: ``python -m standards.render``.

The Markdown spec (``spec/*.zh.md`` and ``spec/*.en.md``) holds blocks between markers::

    <!-- BEGIN GENERATED: rules -->
    ...
    <!-- END GENERATED: rules -->

and this module rewrites every block from ``codelists.json``, ``rules.json`` and the minimal
conformant sample, so the spec and the files cannot disagree (``tests/test_standard_docs.py``
checks that rendering changes nothing). ``--check`` only reports whether a file is out of date.

>>> "XS-ID-001" in render_block("rules", "en")
True
>>> render("no markers here", "en")
'no markers here'
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from standards import HERE, code_lists, codelists_version, rule_catalogue

__all__ = ["SPEC_FILES", "main", "render", "render_block"]

SPEC_DIR = HERE / "spec"
SPEC_FILES: dict[str, Path] = {
    "zh": SPEC_DIR / "DB3202-T-XXXX-2026.zh.md",
    "en": SPEC_DIR / "DB3202-T-XXXX-2026.en.md",
}
MINIMAL_SAMPLE = HERE / "samples" / "minimal.xsmap.xml"

_BLOCK = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)

_WORDS = {
    "code": {"zh": "代码", "en": "code"},
    "name": {"zh": "名称", "en": "name"},
    "other": {"zh": "英文名称", "en": "Chinese name"},
    "severity": {"zh": "严重程度", "en": "severity"},
    "error": {"zh": "错误", "en": "error"},
    "warning": {"zh": "警告", "en": "warning"},
    "rule": {"zh": "规则编号", "en": "rule ID"},
    "clause": {"zh": "条款", "en": "clause"},
    "description": {"zh": "检查内容", "en": "what is checked"},
    "truth": {"zh": "（需真值）", "en": " (needs truth)"},
    "version": {"zh": "规则目录版本", "en": "Rule catalogue version"},
    "lists_version": {"zh": "代码表版本", "en": "Code list version"},
}

_EXTRA_COLUMNS = {
    "marking_kinds": [
        ("gb_5768_3", {"zh": "GB 5768.3 对应标线", "en": "GB 5768.3 marking"}),
        ("painted", {"zh": "有涂料", "en": "painted"}),
        ("dashed", {"zh": "含虚线", "en": "dashed"}),
    ],
    "road_edge_kinds": [("description", {"zh": "说明", "en": "description"})],
    "sign_classes": [
        ("shape", {"zh": "典型形状", "en": "typical shape"}),
        ("colors", {"zh": "颜色", "en": "colours"}),
        ("opendrive_type", {"zh": "OpenDRIVE type", "en": "OpenDRIVE type"}),
        ("opendrive_subtype", {"zh": "OpenDRIVE subtype", "en": "OpenDRIVE subtype"}),
    ],
    "accuracy_grades": [
        ("absolute_m", {"zh": "绝对精度/m", "en": "absolute accuracy (m)"}),
        ("absolute_sigma", {"zh": "绝对精度置信水平", "en": "absolute sigma level"}),
        ("relative_m", {"zh": "相对精度/m", "en": "relative accuracy (m)"}),
        ("relative_sigma", {"zh": "相对精度置信水平", "en": "relative sigma level"}),
    ],
}


def _cell(value: object, lang: str) -> str:
    if isinstance(value, bool):
        return ("是" if value else "否") if lang == "zh" else ("yes" if value else "no")
    if value == "" or value is None:
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _extra(entry_extra, key: str, lang: str) -> object:
    if key in entry_extra:
        value = entry_extra[key]
        if key.endswith("_sigma"):
            return f"{value}σ"
        return value
    return entry_extra.get(f"{key}_{lang}", "")


def _codelist_table(name: str, lang: str) -> str:
    cl = code_lists()[name]
    columns = _EXTRA_COLUMNS.get(name, [])
    other = "name_en" if lang == "zh" else "name_zh"
    own = "name_zh" if lang == "zh" else "name_en"
    head = [_WORDS["code"][lang], _WORDS["name"][lang], _WORDS["other"][lang]]
    head += [label[lang] for _, label in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in cl.entries:
        row = [f"`{e.code}`", getattr(e, own), getattr(e, other)]
        row += [_extra(e.extra, key, lang) for key, _ in columns]
        lines.append("| " + " | ".join(_cell(v, lang) for v in row) + " |")
    return "\n".join(lines)


def _codelists(lang: str) -> str:
    parts = [f"{_WORDS['lists_version'][lang]}: {codelists_version()}"]
    for number, (name, cl) in enumerate(code_lists().items(), start=1):
        title = cl.title_zh if lang == "zh" else cl.title_en
        label = f"表 A.{number} {title}" if lang == "zh" else f"Table A.{number} {title}"
        parts.append(f"**{label}** (`{name}`)\n\n{_codelist_table(name, lang)}")
    return "\n\n".join(parts)


def _rules(lang: str) -> str:
    catalogue = rule_catalogue()
    head = [_WORDS[k][lang] for k in ("rule", "clause", "severity", "description")]
    lines = [
        f"{_WORDS['version'][lang]}: {catalogue.version}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in catalogue.rules:
        text = r.description_zh if lang == "zh" else r.description_en
        if r.needs_truth:
            text += _WORDS["truth"][lang]
        clause = f"附录{r.clause}" if lang == "zh" and r.clause.isalpha() else r.clause
        if lang == "en" and r.clause.isalpha():
            clause = f"Annex {r.clause}"
        row = [f"`{r.id}`", clause, _WORDS[r.severity][lang], text]
        lines.append("| " + " | ".join(_cell(v, lang) for v in row) + " |")
    return "\n".join(lines)


def _grades(lang: str) -> str:
    return _codelist_table("accuracy_grades", lang)


def _sample(lang: str) -> str:
    text = MINIMAL_SAMPLE.read_text(encoding="utf-8") if MINIMAL_SAMPLE.exists() else ""
    return f"```xml\n{text.rstrip()}\n```"


_RENDERERS: dict[str, Callable[[str], str]] = {
    "codelists": _codelists,
    "rules": _rules,
    "accuracy_grades": _grades,
    "sample": _sample,
}


def render_block(name: str, lang: str) -> str:
    """The generated Markdown of block ``name`` ("codelists", "rules", ...) in ``lang``."""
    return _RENDERERS[name](lang)


def render(text: str, lang: str) -> str:
    """``text`` with every generated block rewritten."""

    def replace(match: re.Match[str]) -> str:
        body = render_block(match["name"], lang)
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the spec files in place (or with ``--check`` report the out-of-date ones)."""
    parser = argparse.ArgumentParser(prog="python -m standards.render", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for lang, path in SPEC_FILES.items():
        text = path.read_text(encoding="utf-8")
        new = render(text, lang)
        if new != text:
            stale.append(path)
            if not args.check:
                from pipeline.files import atomic_path

                with atomic_path(path) as tmp:
                    tmp.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'updated'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
