"""OpenDRIVE export and import: REFERENCE section 4 rules, XSD 1.7/1.8, the ASAM checker, round
trip through our reader, agreement with pyxodr, safe parsing, and ``hdmap export``.

The ASAM checker, the 1.8 XSD validator and pyxodr run from ``.venv-qc`` (``make test`` creates
it); those tests skip with a reason when it is absent.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import shapely
from lxml import etree
from scipy.spatial import cKDTree
from shapely import LineString

from formats.opendrive import read_opendrive, write_opendrive
from formats.opendrive.geometry import PlanGeometry
from formats.opendrive.reader import lane_boundary_lines, load_network
from formats.opendrive.validate import (
    asam_checker_report,
    pyxodr_boundaries,
    qc_venv,
    run_asam_checker,
    validate_schema,
)
from formats.opendrive.writer import build_opendrive
from pipeline.errors import FormatError
from pipeline.model import Color, Lane, LaneBoundary, MapModel, MarkingKind, SignClass
from tests.common import empty_model, sample_model

DATE = "2026-11-25T00:00:00"
SCENES = ("urban", "arterial", "highway")
KINDS = ("sample", *SCENES)


def _needs_qc() -> None:
    if not (qc_venv() / "bin" / "python").exists():
        pytest.skip(f"{qc_venv()} is absent: run 'make .venv-qc/.installed' (make test does)")


@pytest.fixture(scope="module")
def models() -> dict[str, MapModel]:
    from data_samples.simulator import build_scene

    out = {"sample": sample_model()}
    for kind in SCENES:
        out[kind] = build_scene(kind, 1).truth
    return out


@pytest.fixture(scope="module")
def written(models, tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    folder = tmp_path_factory.mktemp("xodr")
    out = {}
    for name, model in models.items():
        path = folder / f"{name}.xodr"
        out[name] = (path, write_opendrive(model, path, date=DATE))
    return out


# --- REFERENCE section 4, rule by rule ---------------------------------------------------------


def test_header_georeference_and_element_order(written):
    root = etree.parse(str(written["sample"][0])).getroot()
    tags = [child.tag for child in root]
    assert tags[0] == "header"
    order = {"header": 0, "road": 1, "controller": 2, "junction": 3}
    assert [order[t] for t in tags] == sorted(order[t] for t in tags)
    header = root.find("header")
    assert (header.get("revMajor"), header.get("revMinor")) == ("1", "7")
    assert header.get("name") == "西山 sample road" and header.get("date") == DATE
    assert float(header.get("west")) < float(header.get("east"))
    assert float(header.get("south")) <= float(header.get("north"))
    geo = header.find("geoReference").text
    assert geo == "+proj=tmerc +lat_0=0 +lon_0=120 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
    assert b"<![CDATA[+proj=tmerc" in written["sample"][0].read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_plan_view_is_continuous_and_uses_allowed_geometry(written, kind):
    root = etree.parse(str(written[kind][0])).getroot()
    for road in root.iter("road"):
        geoms = road.findall("planView/geometry")
        assert geoms
        total = 0.0
        prev_end = None
        for g in geoms:
            shape = g[0]
            assert shape.tag in ("line", "arc", "spiral", "paramPoly3")
            if shape.tag == "paramPoly3":
                assert shape.get("pRange") == "normalized"
            if shape.tag == "spiral":
                assert shape.get("curvStart") != shape.get("curvEnd")
            s = float(g.get("s"))
            assert s == pytest.approx(total, abs=1e-9)
            rec = PlanGeometry(
                s,
                float(g.get("x")),
                float(g.get("y")),
                float(g.get("hdg")),
                float(g.get("length")),
                shape.tag,
                tuple((k, float(v) if k != "pRange" else v) for k, v in shape.attrib.items()),
            )
            if prev_end is not None:
                x, y, h = prev_end
                assert math.hypot(x - rec.x, y - rec.y) < 1e-3
                assert abs(math.remainder(h - rec.hdg, 2 * math.pi)) < 1e-6
            ex, ey, eh = rec.evaluate(np.array([rec.length]))
            prev_end = (float(ex[0]), float(ey[0]), float(eh[0]))
            total += rec.length
        assert float(road.get("length")) == pytest.approx(total, abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_rules(written, kind):
    root = etree.parse(str(written[kind][0])).getroot()
    for tag in ("road", "junction", "signal", "object"):
        for el in root.iter(tag):
            assert el.get("id").lstrip("-").isdigit(), (
                f"{tag} id {el.get('id')!r} is not an integer"
            )
    assert not list(root.iter("border")) and not list(root.iter("poly3"))
    for road in root.iter("road"):
        for tag in ("elevationProfile/elevation", "lanes/laneOffset"):
            starts = [float(e.get("s")) for e in road.findall(tag)]
            assert starts and starts[0] == 0.0 and len(set(starts)) == len(starts)
        for link in road.findall("link/*"):
            if link.get("elementType") == "road":
                assert link.get("contactPoint") in ("start", "end")
        sections = road.findall("lanes/laneSection")
        for k, sec in enumerate(sections):
            assert sec.find("center/lane").get("type") == "none"
            for lane in sec.iter("lane"):
                assert lane.get("id") == "0" or lane.findall("width")
                for mark in lane.findall("roadMark"):
                    assert float(mark.get("width")) > 0
                # lane links both ways inside the road
                for succ in lane.findall("link/successor") if k + 1 < len(sections) else ():
                    target = sections[k + 1].find(f".//lane[@id='{succ.get('id')}']")
                    back = [p.get("id") for p in target.findall("link/predecessor")]
                    assert lane.get("id") in back
    for sig in root.iter("signal"):
        assert sig.get("type") and sig.get("subtype") and sig.get("country") == "CN"
    if kind == "urban":
        assert root.find("junction") is not None and root.findall("junction/connection")
        assert {o.get("type") for o in root.iter("object")} >= {"pole", "crosswalk", "roadMark"}


def test_same_model_and_date_give_same_bytes(models, tmp_path):
    a, _ = build_opendrive(models["urban"], date=DATE)
    b, _ = build_opendrive(models["urban"], date=DATE)
    assert a == b
    write_opendrive(models["sample"], tmp_path / "m.xodr", date=DATE)
    assert [p.name for p in tmp_path.iterdir()] == ["m.xodr"]  # atomic: no temp file left


def test_warnings_name_what_opendrive_cannot_hold(written):
    warnings = written["sample"][1]
    assert any("road edges" in w for w in warnings)
    assert any("road arrows" in w for w in warnings)


def test_empty_map_and_bad_version_are_refused(tmp_path):
    with pytest.raises(FormatError, match="no lanes"):
        write_opendrive(empty_model(), tmp_path / "e.xodr")
    with pytest.raises(FormatError, match=r"1\.9"):
        write_opendrive(sample_model(), tmp_path / "v.xodr", version="1.9")
    assert not list(tmp_path.iterdir())


# --- round trip and independent reader ---------------------------------------------------------


def _round_trip(model: MapModel, path: Path, check_widths: bool) -> dict[str, float]:
    back = read_opendrive(path)
    ours = shapely.MultiLineString([shapely.force_2d(b.geometry) for b in back.lane_boundaries])
    theirs = shapely.MultiLineString([shapely.force_2d(b.geometry) for b in model.lane_boundaries])
    to_file = max(
        float(shapely.distance(ours, shapely.points(np.asarray(b.geometry.coords)[:, :2])).max())
        for b in model.lane_boundaries
    )
    painted = [b for b in back.lane_boundaries if b.marking != MarkingKind.VIRTUAL]
    to_model = max(
        float(shapely.distance(theirs, shapely.points(np.asarray(b.geometry.coords)[:, :2])).max())
        for b in painted
    )
    mismatched = 0
    for b in painted:
        mid = shapely.line_interpolate_point(shapely.force_2d(b.geometry), 0.5, normalized=True)
        near = min(
            model.lane_boundaries, key=lambda m: shapely.distance(shapely.force_2d(m.geometry), mid)
        )
        colour_ok = near.color == b.color or (
            near.color == Color.UNKNOWN and b.color == Color.WHITE
        )
        mismatched += near.marking != b.marking or not colour_ok
    # lanes: every written lane lies on exactly one model lane; every model lane is covered
    centre = [shapely.force_2d(lane.geometry) for lane in model.lanes]
    owners = []
    for lane in back.lanes:
        pts = shapely.points(np.asarray(lane.geometry.coords)[:, :2])
        dist = [float(shapely.distance(c, pts).max()) for c in centre]
        owners.append(int(np.argmin(dist)) if min(dist) < 0.02 else -1)
    width_dev = 0.0
    if check_widths:  # width of the written lane at the foot of each model vertex
        for n, lane in enumerate(model.lanes):
            mine = [b for b, owner in zip(back.lanes, owners, strict=True) if owner == n]
            for (x, y, _), w in zip(lane.geometry.coords, lane.widths_m, strict=True):
                p = shapely.Point(x, y)
                got = min(mine, key=lambda b: shapely.distance(shapely.force_2d(b.geometry), p))
                line = shapely.force_2d(got.geometry)
                along = np.concatenate(
                    [[0.0], np.cumsum(np.hypot(*np.diff(np.asarray(line.coords), axis=0).T))]
                )
                width = np.interp(shapely.line_locate_point(line, p), along, got.widths_m)
                width_dev = max(width_dev, abs(float(width) - w))
    # heights: the written road surface (elevation + cross slope) at each model boundary vertex
    back_pts = np.concatenate([np.asarray(b.geometry.coords) for b in back.lane_boundaries])
    tree = cKDTree(back_pts[:, :2])
    model_pts = np.concatenate([np.asarray(b.geometry.coords) for b in model.lane_boundaries])
    _, idx = tree.query(model_pts[:, :2])
    dz = np.abs(model_pts[:, 2] - back_pts[idx, 2])
    return {
        "z_p95": float(np.percentile(dz, 95)),
        "z_max": float(dz.max()),
        "to_file": to_file,
        "to_model": to_model,
        "mismatched": mismatched,
        "unowned": owners.count(-1),
        "covered": len(set(owners) - {-1}),
        "width_dev": width_dev,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_boundaries_lanes_widths_markings(models, written, kind):
    model = models[kind]
    # the sample fixture's lane widths deliberately disagree with its boundaries by up to 0.2 m:
    # the file follows the boundaries, so only the scenes' widths are compared
    got = _round_trip(model, written[kind][0], check_widths=kind != "sample")
    assert got["to_file"] <= 0.02 and got["to_model"] <= 0.02, got
    assert got["width_dev"] <= 0.02, got
    assert got["mismatched"] == 0 and got["unowned"] == 0, got
    assert got["covered"] == len(model.lanes), got
    # heights follow the cross slope (written as superelevation or a crown shape)
    assert got["z_max"] <= 0.02, got


@pytest.mark.parametrize("kind", ["urban", "arterial"])
def test_round_trip_keeps_lane_topology(models, written, kind):
    model, back = models[kind], read_opendrive(written[kind][0])
    centre = [shapely.force_2d(lane.geometry) for lane in model.lanes]
    owner = {}
    for lane in back.lanes:
        pts = shapely.points(np.asarray(lane.geometry.coords)[:, :2])
        dist = [float(shapely.distance(c, pts).max()) for c in centre]
        owner[lane.id] = model.lanes[int(np.argmin(dist))].id
    pieces = back.lanes
    successors = {(owner[a.id], owner[b]) for a in pieces for b in a.successors}
    neighbours = {
        (owner[a.id], owner[n]) for a in pieces for n in (a.left_neighbour, a.right_neighbour) if n
    }
    assert {(a, b) for a, b in successors if a != b} == {
        (lane.id, s) for lane in model.lanes for s in lane.successors
    }
    assert neighbours == {
        (lane.id, n)
        for lane in model.lanes
        for n in (lane.left_neighbour, lane.right_neighbour)
        if n
    }
    assert {owner[lane.id] for lane in back.lanes if lane.junction} == {
        lane.id for lane in model.lanes if lane.junction
    }


def _lane_count_model() -> MapModel:
    """Two lanes for 50 m, then a third appears on the right over 20 m (a smooth taper)."""
    e0, n0 = 534000.0, 3496000.0

    def line(x0: float, x1: float, y) -> LineString:
        xs = np.linspace(x0, x1, 41)
        ys = np.broadcast_to(np.asarray(y, dtype=float), xs.shape)
        return LineString([(e0 + x, n0 + v, 5.0 + 0.01 * x) for x, v in zip(xs, ys, strict=True)])

    u = np.clip((np.linspace(50, 100, 41) - 50) / 20, 0, 1)
    taper = 3.5 * (3 * u**2 - 2 * u**3)
    kw = {"survey_id": "lane-count"}
    bnd = {}
    for name, x0, x1, y, kind in (
        ("c1", 0, 50, 0.0, MarkingKind.DOUBLE_SOLID),
        ("d1", 0, 50, -3.5, MarkingKind.DASHED),
        ("e1", 0, 50, -7.0, MarkingKind.SOLID),
        ("c2", 50, 100, 0.0, MarkingKind.DOUBLE_SOLID),
        ("d2", 50, 100, -3.5, MarkingKind.DASHED),
        ("d3", 50, 100, -7.0, MarkingKind.SOLID_DASHED),
        ("e2", 50, 100, -7.0 - taper, MarkingKind.SOLID),
    ):
        color = Color.YELLOW if name.startswith("c") else Color.WHITE
        bnd[name] = LaneBoundary.create(line(x0, x1, y), kind, color, **kw, id_extra=(name,))

    def lane(x0, x1, y, widths, left, right) -> Lane:
        return Lane.create(
            line(x0, x1, y),
            tuple(float(w) for w in np.broadcast_to(widths, (41,))),
            **kw,
            left_boundary=bnd[left].id,
            right_boundary=bnd[right].id,
        )

    a1 = lane(0, 50, -1.75, 3.5, "c1", "d1")
    a2 = lane(0, 50, -5.25, 3.5, "d1", "e1")
    b1 = lane(50, 100, -1.75, 3.5, "c2", "d2")
    b2 = lane(50, 100, -5.25, 3.5, "d2", "d3")
    b3 = lane(50, 100, -7.0 - taper / 2, taper, "d3", "e2")
    lanes = (
        a1.replace(right_neighbour=a2.id, successors=(b1.id,)),
        a2.replace(left_neighbour=a1.id, successors=(b2.id,)),
        b1.replace(right_neighbour=b2.id, predecessors=(a1.id,)),
        b2.replace(left_neighbour=b1.id, right_neighbour=b3.id, predecessors=(a2.id,)),
        b3.replace(left_neighbour=b2.id),
    )
    return MapModel(
        "EPSG:4549", name="lane count change", lane_boundaries=tuple(bnd.values()), lanes=lanes
    )


def test_lane_count_change_is_a_new_lane_section(tmp_path):
    model = _lane_count_model()
    path = tmp_path / "lanes.xodr"
    assert not [w for w in write_opendrive(model, path, date=DATE) if "provenance" not in w]
    root = etree.parse(str(path)).getroot()
    (road,) = root.findall("road")
    sections = road.findall("lanes/laneSection")
    assert [len(sec.findall("right/lane")) for sec in sections] == [2, 3]
    appearing = sections[1].find("right/lane[@id='-3']")
    assert appearing.find("link") is None and float(appearing.find("width").get("a")) < 1e-6
    got = _round_trip(model, path, check_widths=True)
    assert got["to_file"] <= 0.02 and got["to_model"] <= 0.02 and got["width_dev"] <= 0.02, got
    assert got["mismatched"] == 0 and got["covered"] == 5, got
    if (qc_venv() / "bin" / "python").exists():
        assert validate_schema(path, "1.7") == []
        assert [i for i in run_asam_checker(path) if i.level == 1] == []


def test_round_trip_keeps_signs_poles_and_objects(models, written):
    model, back = models["urban"], read_opendrive(written["urban"][0])
    assert len(back.poles) == len(model.poles) and len(back.signs) == len(model.signs)
    assert len(back.crosswalks) == len(model.crosswalks) and len(back.stop_lines) == len(
        model.stop_lines
    )
    assert len(back.junctions) == len(model.junctions) == 1
    for sign in model.signs:
        got = min(back.signs, key=lambda b: b.geometry.distance(sign.geometry))
        assert (
            got.geometry.distance(sign.geometry) < 1e-6
            and abs(got.geometry.z - sign.geometry.z) < 0.02
        )
        assert got.sign_class == sign.sign_class
        assert abs(math.remainder(got.facing_deg - sign.facing_deg, 360.0)) < 1e-6
    for pole in model.poles:
        got = min(back.poles, key=lambda b: b.geometry.distance(pole.geometry))
        assert got.geometry.distance(pole.geometry) < 1e-6 and got.height_m == pytest.approx(
            pole.height_m
        )
    for cw in model.crosswalks:
        got = min(back.crosswalks, key=lambda b: b.geometry.distance(cw.geometry))
        assert got.geometry.symmetric_difference(cw.geometry).area < 1e-6
    assert back.crs.startswith("+proj=tmerc") and "lon_0=120" in back.crs


@pytest.mark.parametrize("kind", KINDS)
def test_pyxodr_agrees_with_our_reader(written, kind):
    _needs_qc()
    path = written[kind][0]
    ours = lane_boundary_lines(load_network(path), step_m=0.5)
    theirs = pyxodr_boundaries(path)
    assert len(theirs) == sum(1 for key in ours if key[2] != 0)
    worst = 0.0
    for item in theirs:
        key = (item["road"], item["section"], item["lane"])
        line = shapely.LineString(ours[key][:, :2])
        pts = np.asarray(item["points"])
        worst = max(worst, float(shapely.distance(line, shapely.points(pts)).max()))
        # and ours onto theirs, away from the ends (pyxodr stops short of a section's end)
        their_line = shapely.LineString(pts)
        our_pts = shapely.points(ours[key][:, :2])
        at = shapely.line_locate_point(their_line, our_pts)
        inner = (at > 1e-6) & (at < their_line.length - 1e-6)
        if inner.any():
            worst = max(worst, float(shapely.distance(their_line, our_pts[inner]).max()))
    assert worst <= 0.05


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_xsd_1_7(written, kind):
    _needs_qc()
    assert validate_schema(written[kind][0], "1.7") == []


@pytest.mark.parametrize("kind", KINDS)
def test_asam_checker_reports_no_errors(written, kind):
    _needs_qc()
    report = asam_checker_report(written[kind][0])
    assert report.errors == (), report.errors[:5]
    assert report.completed >= 22  # the semantic and geometry checks ran (22 of 23 apply)


def test_version_1_8_validates_with_xsd_1_1_and_the_checker(models, tmp_path):
    _needs_qc()
    path = tmp_path / "urban18.xodr"
    write_opendrive(models["urban"], path, version="1.8", date=DATE)
    assert etree.parse(str(path)).getroot().find("header").get("revMinor") == "8"
    assert validate_schema(path, "1.8") == []
    assert [i for i in run_asam_checker(path) if i.level == 1] == []
    broken = tmp_path / "broken18.xodr"
    broken.write_bytes(path.read_bytes().replace(b' length="', b' lenxgth="', 1))
    assert validate_schema(broken, "1.8")  # the 1.1 validator does find errors


def test_checker_errors_are_read_from_the_result_file(tmp_path):
    _needs_qc()
    bad = tmp_path / "bad.xodr"
    bad.write_text("<OpenDRIVE><header revMajor='1' revMinor='7'/><road/></OpenDRIVE>")
    assert any(i.level == 1 for i in run_asam_checker(bad))


# --- reader -------------------------------------------------------------------------------------

TINY = """<?xml version="1.0"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="7" name="tiny">
    <geoReference><![CDATA[+proj=utm +zone=50 +ellps=GRS80 +units=m]]></geoReference>
  </header>
  <road name="r" length="30.0" id="1" junction="-1">
    <planView>
      <geometry s="0" x="0" y="0" hdg="0" length="10"><line/></geometry>
      <geometry s="10" x="10" y="0" hdg="0" length="20"><arc curvature="0.01"/></geometry>
    </planView>
    <elevationProfile><elevation s="0" a="5" b="0.01" c="0" d="0"/></elevationProfile>
    <lanes>
      <laneSection s="0">
        <left><lane id="1" type="driving" level="false">
          <width sOffset="0" a="3.0" b="0" c="0" d="0"/>
          <roadMark sOffset="0" type="solid broken" color="white" width="0.15"/></lane></left>
        <center><lane id="0" type="none" level="false">
          <roadMark sOffset="0" type="solid solid" color="yellow" width="0.15"/></lane></center>
        <right><lane id="-1" type="driving" level="false">
          <width sOffset="0" a="3.5" b="0" c="0" d="0"/>
          <roadMark sOffset="0" type="broken" color="white" width="0.15"/>
          <roadMark sOffset="5" type="solid" color="standard" width="0.15"/></lane></right>
      </laneSection>
    </lanes>
    <signals><signal s="5" t="-5" id="7" dynamic="no" orientation="+" zOffset="2" country="CN"
      type="P" subtype="stop" height="0.8" width="0.8"/></signals>
  </road>
</OpenDRIVE>
"""


def test_reader_evaluates_lanes_marks_and_signals(tmp_path):
    path = tmp_path / "tiny.xodr"
    path.write_text(TINY)
    model = read_opendrive(path)
    assert model.crs == "+proj=utm +zone=50 +ellps=GRS80 +units=m"
    right = next(lane for lane in model.lanes if lane.geometry.coords[0][1] < 0)
    left = next(lane for lane in model.lanes if lane.geometry.coords[0][1] > 0)
    assert right.geometry.coords[0] == pytest.approx((0.0, -1.75, 5.0))
    assert left.geometry.coords[-1] == pytest.approx((0.0, 1.5, 5.0))  # digitised against s
    assert (
        set(right.widths_m) == {3.5}
        and max(np.diff(np.asarray(right.geometry.coords)[:, 0])) <= 0.5
    )
    kinds = {(b.marking, b.color) for b in model.lane_boundaries}
    assert (MarkingKind.DOUBLE_SOLID, Color.YELLOW) in kinds
    assert (MarkingKind.DASHED, Color.WHITE) in kinds and (MarkingKind.SOLID, Color.WHITE) in kinds
    assert (MarkingKind.DASHED_SOLID, Color.WHITE) in kinds  # solid inside = right of s, left lane
    # the arc's end: centre (10, 100), 20 m at curvature 0.01
    end = lane_boundary_lines(load_network(path))[("1", 0, 0)][-1]
    assert end[0] == pytest.approx(10 + 100 * math.sin(0.2)) and end[1] == pytest.approx(
        100 - 100 * math.cos(0.2)
    )
    (sign,) = model.signs
    assert sign.sign_class == SignClass.STOP and sign.geometry.z == pytest.approx(5.05 + 2 + 0.4)
    assert sign.facing_deg == pytest.approx(270.0)  # faces traffic coming along +s (eastwards)


def test_reader_refuses_entities_quickly(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xxe = tmp_path / "xxe.xodr"
    xxe.write_text(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<OpenDRIVE><header revMajor='1' revMinor='7' name='&x;'/></OpenDRIVE>"
    )
    bomb = tmp_path / "bomb.xodr"
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    bomb.write_text(f'<?xml version="1.0"?><!DOCTYPE r [{lol}]><OpenDRIVE>&l9;</OpenDRIVE>')
    for path in (xxe, bomb):
        start = time.perf_counter()
        with pytest.raises(FormatError, match="entities") as err:
            read_opendrive(path)
        assert time.perf_counter() - start < 1.0
        assert str(path) in str(err.value) and "TOPSECRET" not in str(err.value)


def test_reader_refuses_malformed_oversized_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.xodr"
    bad.write_text("<OpenDRIVE>\n<header>\n</OpenDRIVE>")
    with pytest.raises(FormatError) as err:
        read_opendrive(bad)
    message = str(err.value)
    assert (
        message.startswith(f"{bad}: not well-formed XML")
        and "line 3" in message
        and "\n" not in message
    )
    (tmp_path / "big.xodr").write_text(TINY)
    with pytest.raises(FormatError, match="limit"):
        read_opendrive(tmp_path / "big.xodr", max_bytes=100)
    (tmp_path / "other.xodr").write_text("<osm/>")
    with pytest.raises(FormatError, match="not <OpenDRIVE>"):
        read_opendrive(tmp_path / "other.xodr")


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_export_gpkg_and_xodr(tmp_path, capsys):
    from flows.cli.main import main
    from formats.gpkg import write_gpkg

    gpkg = tmp_path / "map.gpkg"
    write_gpkg(sample_model(), gpkg)
    out = tmp_path / "map.xodr"
    assert (
        main(["export", "--format", "opendrive", "--version", "1.8", str(gpkg), "-o", str(out)])
        == 0
    )
    assert etree.parse(str(out)).getroot().find("header").get("revMinor") == "8"
    captured = capsys.readouterr()
    assert "warning: 2 road edges" in captured.err and str(out) in captured.out
    again = tmp_path / "again.xodr"
    assert main(["export", "--format", "opendrive", str(out), "-o", str(again)]) == 0
    assert len(read_opendrive(again).lanes) == len(read_opendrive(out).lanes)
    (tmp_path / "x.txt").write_text("x")
    assert main(["export", "--format", "opendrive", str(tmp_path / "x.txt"), "-o", str(again)]) == 3
    assert (
        main(["export", "--format", "opendrive", str(tmp_path / "none.gpkg"), "-o", str(again)])
        == 3
    )
    assert "unknown map format" in capsys.readouterr().err
