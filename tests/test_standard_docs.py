"""The standard's text, machine-readable files, model and samples agree with each other."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from formats.localstd import LAYER_ENCODINGS, to_xml_bytes
from pipeline.model import (
    ArrowKind,
    Color,
    Direction,
    MarkingKind,
    RoadEdgeKind,
    SignClass,
    SignShape,
)
from qa.validate import validate_file
from standards import (
    XSD_PATH,
    accuracy_grade,
    code_lists,
    rule_catalogue,
    sign_class,
)
from standards.make_samples import SAMPLES_DIR, minimal_model
from standards.render import SPEC_FILES, render

MODEL_ENUMS = {
    "marking_kinds": MarkingKind,
    "colors": Color,
    "road_edge_kinds": RoadEdgeKind,
    "lane_directions": Direction,
    "arrow_kinds": ArrowKind,
    "sign_shapes": SignShape,
    "sign_classes": SignClass,
}


@pytest.mark.parametrize("lang", SPEC_FILES)
def test_spec_tables_are_generated_from_the_files(lang):
    text = SPEC_FILES[lang].read_text(encoding="utf-8")
    assert render(text, lang) == text, "run: python -m standards.render"
    for rule in rule_catalogue().rules:
        assert f"`{rule.id}`" in text
    for name, cl in code_lists().items():
        assert f"(`{name}`)" in text
        for code in cl.codes:
            assert f"`{code}`" in text


@pytest.mark.parametrize("lang", SPEC_FILES)
def test_spec_markdown_tables_are_rectangular(lang):
    lines = SPEC_FILES[lang].read_text(encoding="utf-8").splitlines()
    width = None
    for line in lines:
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line)) - 1
        if width is None:
            width = cells
        assert cells == width, line


@pytest.mark.parametrize("lang", SPEC_FILES)
def test_every_rule_clause_exists_in_the_spec(lang):
    text = SPEC_FILES[lang].read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,3} (\S+) ", text, flags=re.MULTILINE))
    annexes = set(re.findall(r"^## (?:Annex |附录)([A-Z])", text, flags=re.MULTILINE))
    for rule in rule_catalogue().rules:
        assert rule.clause in headings | annexes, rule.id


@pytest.mark.parametrize("lang", SPEC_FILES)
def test_every_encoded_attribute_has_a_row_in_its_element_table(lang):
    text = SPEC_FILES[lang].read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.MULTILINE)
    common = next(s for s in sections if s.startswith("6.1 "))
    for name in ("id", "confidence", "accuracyM", "surveyId", "method"):
        assert f"| `{name}` |" in common
    for encoding in LAYER_ENCODINGS:
        (section,) = [
            s
            for s in sections
            if f"(`{encoding.element}`)" in s.splitlines()[0]
            or f"（`{encoding.element}`）" in s.splitlines()[0]
        ]
        names = [a.xml for a in encoding.attributes]
        names += [tag for tag, _ in encoding.lists] + [tag for tag, _ in encoding.refs]
        names.append(
            {"line": "line", "point": "point", "polygon": "polygon"}.get(
                encoding.geometry, "polygon"
            )
        )
        for name in names:
            assert f"`{name}`" in section, (encoding.element, name)


def test_code_lists_hold_exactly_the_model_values():
    lists = code_lists()
    for name, enum in MODEL_ENUMS.items():
        assert lists[name].codes == tuple(e.value for e in enum), name
    for encoding in LAYER_ENCODINGS:
        for a in encoding.attributes:
            if a.kind == "enum":
                assert lists[a.codelist].codes == tuple(e.value for e in a.enum)
    for code in lists["sign_classes"].codes:
        entry = sign_class(code)
        assert entry.shape == "" or entry.shape in lists["sign_shapes"]
        assert entry.opendrive_type and entry.opendrive_subtype
    for entry in lists.values():
        assert all(e.name_zh and e.name_en for e in entry.entries)


def test_accuracy_grades_carry_figures_and_anchors():
    a, b = accuracy_grade("A"), accuracy_grade("B")
    assert (a.absolute_m, a.absolute_sigma, a.relative_m, a.relative_sigma) == (0.5, 2, 0.1, 3)
    assert (b.absolute_m, b.absolute_sigma, b.relative_m, b.relative_sigma) == (1.0, 2, 0.2, 3)
    assert "REFERENCE §3" in a.anchor and "REFERENCE §3" in b.anchor


def test_rule_catalogue_is_well_formed():
    catalogue = rule_catalogue()
    assert re.fullmatch(r"\d+\.\d+\.\d+", catalogue.version)
    assert len(set(catalogue.ids)) == len(catalogue.ids)
    for rule in catalogue.rules:
        assert re.fullmatch(r"XS-[A-Z]{2,3}-\d{3}", rule.id)
        assert rule.severity in ("error", "warning")
        assert rule.clause and rule.description_en and rule.description_zh


def test_schema_compiles():
    etree.XMLSchema(etree.parse(str(XSD_PATH)))


def test_minimal_sample_is_what_the_writer_makes():
    assert (SAMPLES_DIR / "minimal.xsmap.xml").read_bytes() == to_xml_bytes(minimal_model())


SAMPLES = sorted(SAMPLES_DIR.glob("*.xsmap.xml"))


def test_samples_exist():
    assert {p.name for p in SAMPLES} >= {
        "minimal.xsmap.xml",
        "urban-1.xsmap.xml",
        "highway-1.xsmap.xml",
    }


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_samples_conform_with_no_findings(sample):
    report = validate_file(sample)
    assert report.errors == ()
    assert report.findings == ()


@pytest.mark.parametrize("lang", SPEC_FILES)
def test_spec_renders_as_markdown_with_all_its_tables(lang):
    markdown_it = pytest.importorskip("markdown_it")  # a dependency of rich
    text = SPEC_FILES[lang].read_text(encoding="utf-8")
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    separators = sum(1 for line in text.splitlines() if line.startswith("|---"))
    assert separators >= 20
    assert page.count("<table>") == separators
    assert page.count("<h2>") >= 12 and '<pre><code class="language-xml">' in page
    title = "征求意见稿" if lang == "zh" else "Draft for comment"
    assert title in page and "DB3202/T XXXX—2026" in page
