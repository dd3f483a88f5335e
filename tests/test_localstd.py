"""The local-standard exchange format: lossless, deterministic, schema-valid, and safe to read."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from lxml import etree
from shapely import Point, Polygon

from formats.localstd import (
    DEFAULT_MAX_BYTES,
    FILE_SUFFIX,
    read_document,
    read_localstd,
    schema_errors,
    to_xml_bytes,
    write_localstd,
)
from pipeline.errors import FormatError, HDMapIOError
from pipeline.model import MapModel, Pole, RoadArrow
from standards import NAMESPACE
from tests.common import MODELS, SURVEY_ID, sample_model

NS = f"{{{NAMESPACE}}}"


@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_round_trip_is_exact(make_model, tmp_path):
    model = make_model()
    path = tmp_path / f"map{FILE_SUFFIX}"
    write_localstd(model, path)
    back = read_localstd(path)
    assert back == model
    # bit-exact floats, not merely equal-looking ones
    for a, b in zip(model.features(), back.features(), strict=True):
        assert a.geometry.wkb == b.geometry.wkb
        assert a.confidence.hex() == b.confidence.hex()


@pytest.mark.parametrize("make_model", MODELS.values(), ids=MODELS.keys())
def test_written_files_are_schema_valid_and_deterministic(make_model, tmp_path):
    model = make_model()
    first, second = tmp_path / "a.xsmap.xml", tmp_path / "b.xsmap.xml"
    write_localstd(model, first)
    write_localstd(make_model(), second)
    assert first.read_bytes() == second.read_bytes()
    tree = etree.parse(str(first))
    assert schema_errors(tree) == []
    assert first.read_bytes().startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_header_fields_round_trip(tmp_path):
    path = tmp_path / "m.xsmap.xml"
    stamp = {
        "validator": "hdmap-validate",
        "validatorVersion": "0.1.0",
        "catalogueVersion": "1.0.0",
        "date": "2026-11-25",
        "result": "conforms",
        "errors": 0,
        "warnings": 2,
    }
    write_localstd(
        sample_model(), path, accuracy_grade="B", tile_id=545_554_703, map_version=7, stamp=stamp
    )
    header = read_document(path).header
    assert header.accuracy_grade == "B"
    assert header.tile_id == 545_554_703
    assert header.map_version == "7"
    assert header.name == "西山 sample road"  # UTF-8 text survives
    assert dict(header.stamp) == {k: str(v) for k, v in stamp.items()}
    assert read_localstd(path) == sample_model()


def test_polygon_holes_and_point_arrows_round_trip(tmp_path):
    outer = [(0, 0, 1), (10, 0, 1), (10, 10, 1), (0, 10, 1), (0, 0, 1)]
    hole = [(2, 2, 1), (2, 4, 1), (4, 4, 1), (4, 2, 1), (2, 2, 1)]
    arrow = RoadArrow.create(Polygon(outer, [hole]), "left", survey_id=SURVEY_ID)
    point = RoadArrow.create(Point(1e-300, -0.0, 5e-324), "right", survey_id=SURVEY_ID)
    model = MapModel("EPSG:4549", road_arrows=[arrow, point])
    path = tmp_path / "m.xsmap.xml"
    write_localstd(model, path)
    back = read_localstd(path)
    assert back == model
    assert math.copysign(1.0, back.road_arrows[1].geometry.y) == -1.0  # -0.0 kept


def _edit(path: Path, change) -> None:
    tree = etree.parse(str(path))
    change(tree.getroot())
    tree.write(str(path), xml_declaration=True, encoding="UTF-8")


def test_unknown_code_names_layer_and_feature(tmp_path):
    path = tmp_path / "m.xsmap.xml"
    model = sample_model()
    write_localstd(model, path)
    boundary = model.lane_boundaries[1]

    def change(root):
        root.find(f".//{NS}laneBoundary[@id='{boundary.id}']").set("marking", "zigzag")

    _edit(path, change)
    with pytest.raises(FormatError) as info:
        read_localstd(path)
    message = str(info.value)
    assert message.startswith(f"{path}: layer 'lane_boundaries': feature {boundary.id}")
    assert "unknown marking 'zigzag'" in message


def test_schema_violation_is_a_format_error(tmp_path):
    path = tmp_path / "m.xsmap.xml"
    write_localstd(sample_model(), path)
    _edit(path, lambda root: root.find(f"{NS}header").append(etree.Element(f"{NS}surprise")))
    with pytest.raises(FormatError, match="not valid against the XSD"):
        read_localstd(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(HDMapIOError, match="no such file"):
        read_localstd(tmp_path / "absent.xsmap.xml")
    with pytest.raises(HDMapIOError, match="folder"):
        read_localstd(tmp_path)


# ---------------------------------------------------------------------------------- safe reading

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xsmap [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<xsmap xmlns="urn:db3202:hdmap:xsmap:1.0" formatVersion="1.0"><header><name>&x;</name></header>
</xsmap>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xsmap>&lol9;</xsmap>"""


def _refused_quickly(path: Path, match: str, **kwargs) -> str:
    start = time.perf_counter()
    with pytest.raises(FormatError, match=match) as info:
        read_localstd(path, **kwargs)
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_malformed_xml_is_refused(tmp_path):
    path = tmp_path / "broken.xsmap.xml"
    path.write_bytes(b"<?xml version='1.0'?><xsmap><header></xsmap>")
    _refused_quickly(path, "not well-formed XML")


@pytest.mark.parametrize("padding", [0, 10_000], ids=["doctype-first", "doctype-after-comment"])
def test_external_entity_is_refused(tmp_path, padding):
    path = tmp_path / "xxe.xsmap.xml"
    comment = b"<!--" + b"x" * padding + b"-->\n" if padding else b""
    path.write_bytes(XXE.replace(b"<!DOCTYPE", comment + b"<!DOCTYPE", 1))
    message = _refused_quickly(path, "DOCTYPE declarations are not allowed")
    assert "root:" not in message  # nothing of /etc/passwd leaks


@pytest.mark.parametrize("padding", [0, 10_000], ids=["doctype-first", "doctype-after-comment"])
def test_entity_expansion_bomb_is_refused(tmp_path, padding):
    path = tmp_path / "bomb.xsmap.xml"
    comment = b"<!--" + b"x" * padding + b"-->\n" if padding else b""
    path.write_bytes(BOMB.replace(b"<!DOCTYPE", comment + b"<!DOCTYPE", 1))
    _refused_quickly(path, "DOCTYPE declarations are not allowed")


def test_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "m.xsmap.xml"
    write_localstd(sample_model(), path)
    size = path.stat().st_size
    message = _refused_quickly(path, "more than the reader's limit", max_bytes=size - 1)
    assert f"{size} bytes" in message
    assert read_localstd(path, max_bytes=size) == sample_model()


def test_sparse_one_gigabyte_file_is_refused_without_reading(tmp_path):
    path = tmp_path / "huge.xsmap.xml"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    assert DEFAULT_MAX_BYTES < 1 << 30
    _refused_quickly(path, "refused before reading")


def test_to_xml_bytes_writes_every_layer_even_when_empty():
    root = etree.fromstring(to_xml_bytes(MapModel("EPSG:4549")))
    names = [etree.QName(child).localname for child in root]
    assert names == [
        "header",
        "laneBoundaries",
        "lanes",
        "roadEdges",
        "stopLines",
        "crosswalks",
        "roadArrows",
        "poles",
        "signs",
        "junctions",
    ]


def test_pole_with_none_accuracy_omits_the_attribute():
    pole = Pole.create(Point(1.0, 2.0, 3.0), 6.0, 0.1, survey_id="s")
    root = etree.fromstring(to_xml_bytes(MapModel("EPSG:4549", poles=[pole])))
    element = root.find(f".//{NS}pole")
    assert "accuracyM" not in element.attrib
    assert element.get("heightM") == "6.0"
