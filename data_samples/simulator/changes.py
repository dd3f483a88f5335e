"""The "changed" variant of a scene: five known map changes injected into world and truth.

:func:`apply_changes` repaints a dashed lane line solid, removes a sign (its pole stays), adds a
sign to an existing pole, moves a stop line 1-3 m back along its approach and removes a pole that
carries no sign. Everything else (surfaces, paint, truth features and their IDs) is kept as is;
lanes that named the repainted boundary name its new ID. Each change is returned as a record in
the ArgoTweak-style taxonomy used by change detection (``marking_changed``, ``deleted``,
``inserted``, ``geometry_changed``), with an anchor in the scene CRS (EPSG:4549, metres).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import shapely
from shapely import LineString

from data_samples.simulator.markings import map_polygon, solid_pieces, st_rectangle
from data_samples.simulator.scene import PaintPatch, Scene
from data_samples.simulator.scenes import (
    LINE_W,
    RoadFrame,
    road_frame,
    sign_panel_surfaces,
)
from pipeline.model import (
    Color,
    Feature,
    LaneBoundary,
    MarkingKind,
    Sign,
    SignClass,
    SignShape,
    StopLine,
    anchor_point,
    feature_id,
)

__all__ = ["CHANGE_KINDS", "apply_changes"]

CHANGE_KINDS = ("marking_changed", "deleted", "inserted", "geometry_changed")


def _local_st(frame: RoadFrame, geometry) -> np.ndarray:
    """(s, t) of a CRS geometry's vertices."""
    xyz = shapely.get_coordinates(geometry, include_z=True)
    s, t = frame.line.project(xyz[:, 0] - frame.origin[0], xyz[:, 1] - frame.origin[1])
    return np.column_stack([s, t])


def _crs_line(frame: RoadFrame, s: np.ndarray, t: np.ndarray) -> LineString:
    x, y = frame.line.offset_points(s, t)
    ox, oy, oz = frame.origin
    return LineString(np.column_stack([x + ox, y + oy, frame.z(s, t) + oz]))


def _record(
    change: str, layer: str, old: Feature | None, new: Feature | None, description: str
) -> dict:
    anchor = anchor_point((new or old).geometry)
    return {
        "change": change,
        "layer": layer,
        "old_id": old.id if old else None,
        "new_id": new.id if new else None,
        "description": description,
        "anchor": [round(v, 4) for v in anchor],
    }


def _drive_heading_at(scene: Scene, x_local: float, y_local: float) -> float:
    path = scene.drive_path.xyz
    i = int(np.argmin((path[:, 0] - x_local) ** 2 + (path[:, 1] - y_local) ** 2))
    return float(scene.drive_path.heading_rad[i])


def _faces_vehicle(scene: Scene, sign: Sign) -> bool:
    ox, oy, _ = scene.origin
    hdg = _drive_heading_at(scene, sign.geometry.x - ox, sign.geometry.y - oy)
    face = math.radians(sign.facing_deg)
    nx, ny = math.sin(face), math.cos(face)  # azimuth clockwise from north -> vector
    return nx * math.cos(hdg) + ny * math.sin(hdg) < -0.7


def apply_changes(scene: Scene, seed: int) -> tuple[Scene, list[dict]]:
    """Inject five changes into ``scene`` (from :func:`~data_samples.simulator.build_scene`).

    Returns the changed scene and one record per change: ``{"change", "layer", "old_id",
    "new_id", "description", "anchor"}`` with ``anchor`` = [x, y, z] in the scene CRS. The same
    scene and ``seed`` always give the same changes.
    """
    rng = np.random.default_rng(seed)
    frame = road_frame(scene.kind, scene.seed, scene.metadata.get("length_m"))
    if tuple(frame.origin) != tuple(scene.origin):
        raise ValueError("scene was not built by build_scene (its road frame does not match)")
    truth = scene.truth
    ox, oy, oz = scene.origin
    surfaces = list(scene.surfaces)
    paint = list(scene.paint)
    records: list[dict] = []
    replaced: dict[str, Feature | None] = {}  # old id -> new feature (None: deleted)
    inserted: list[Feature] = []

    # 1. a dashed lane line repainted solid (prefer lines of the surveyed direction)
    dashed = [b for b in truth.lane_boundaries if b.marking == MarkingKind.DASHED]
    if not dashed:
        raise ValueError("scene has no dashed lane line to repaint")
    path_t = float(scene.metadata.get("drive_lane_offset_m", 0.0))
    same_side = [
        b for b in dashed if np.sign(_local_st(frame, b.geometry)[0, 1]) == np.sign(path_t)
    ]
    old_b = (same_side or dashed)[int(rng.integers(len(same_side or dashed)))]
    new_b = LaneBoundary.create(
        old_b.geometry,
        MarkingKind.SOLID,
        old_b.color,
        survey_id=old_b.provenance.survey_id,
        method=old_b.provenance.method,
        id_extra=(MarkingKind.SOLID.value, old_b.color.value),
        width_m=old_b.width_m,
    )
    st = _local_st(frame, old_b.geometry)
    s0, s1 = float(st[:, 0].min()), float(st[:, 0].max())
    t = float(np.median(st[:, 1]))
    paint = [p for p in paint if p.feature_id != old_b.id]
    material = "paint_yellow" if old_b.color == Color.YELLOW else "paint_white"
    for a, b in solid_pieces(s0, s1):
        poly = map_polygon(frame.line, st_rectangle(a, b, t - LINE_W / 2, t + LINE_W / 2))
        paint.append(PaintPatch(poly, material, float(rng.uniform(0.0, 0.05)), new_b.id))
    replaced[old_b.id] = new_b
    records.append(
        _record(
            "marking_changed",
            "lane_boundaries",
            old_b,
            new_b,
            f"lane line repainted from dashed to solid over {s1 - s0:.1f} m",
        )
    )

    # 2. a sign removed (its pole stays)
    facing = [s for s in truth.signs if _faces_vehicle(scene, s)] or list(truth.signs)
    gone_sign = facing[int(rng.integers(len(facing)))]
    surfaces = [s for s in surfaces if s.feature_id != gone_sign.id]
    replaced[gone_sign.id] = None
    records.append(
        _record(
            "deleted",
            "signs",
            gone_sign,
            None,
            f"{gone_sign.sign_class.value} sign removed; its pole remains",
        )
    )

    # 3 and 5. poles carrying no sign: one gets a new sign, another is removed
    carrying = {s.pole for s in truth.signs}
    bare = [p for p in truth.poles if p.id not in carrying]
    if len(bare) < 2:
        raise ValueError("scene needs two poles without signs to add a sign and remove a pole")
    order = rng.permutation(len(bare))
    host, gone_pole = bare[int(order[0])], bare[int(order[1])]
    hx, hy, hz = host.geometry.x - ox, host.geometry.y - oy, host.geometry.z - oz
    hdg = _drive_heading_at(scene, hx, hy)
    nx, ny = -math.cos(hdg), -math.sin(hdg)  # facing the oncoming survey vehicle
    centre_h = float(rng.uniform(2.8, 3.5))
    diameter = float(rng.choice([0.6, 0.8])) if scene.kind != "highway" else 1.2
    cx, cy, cz = hx + nx * (host.radius_m + 0.03), hy + ny * (host.radius_m + 0.03), hz + centre_h
    new_class = SignClass.PROHIBITION if scene.kind == "highway" else SignClass.MANDATORY
    new_sign = Sign.create(
        shapely.Point(cx + ox, cy + oy, cz + oz),
        new_class,
        SignShape.CIRCLE,
        round(math.degrees(math.atan2(nx, ny)) % 360.0, 4),
        survey_id=host.provenance.survey_id,
        method=host.provenance.method,
        id_extra=("inserted",),
        width_m=diameter,
        height_m=diameter,
        pole=host.id,
    )
    surfaces += sign_panel_surfaces(new_sign, (cx, cy, cz), (nx, ny))
    inserted.append(new_sign)
    records.append(
        _record(
            "inserted",
            "signs",
            None,
            new_sign,
            f"{new_class.value} sign ({diameter:.1f} m circle) added on an existing pole",
        )
    )

    # 4. a stop line moved back along its approach
    if truth.stop_lines:
        old_s = truth.stop_lines[int(rng.integers(len(truth.stop_lines)))]
        st = _local_st(frame, old_s.geometry)
        s_mid = float(st[:, 0].mean())
        side = float(np.sign(st[:, 1].mean()))  # t < 0: traffic runs +s, so "back" is -s
        shift = float(rng.uniform(1.0, 3.0))
        s_new = s_mid + shift * side
        t_lo, t_hi = float(st[:, 1].min()), float(st[:, 1].max())
        geom = _crs_line(frame, np.full(len(st), s_new), st[:, 1])
        new_s = StopLine.create(
            geom,
            survey_id=old_s.provenance.survey_id,
            method=old_s.provenance.method,
            id_extra=("moved",),
            width_m=old_s.width_m,
        )
        wear = [p.wear for p in paint if p.feature_id == old_s.id]
        paint = [p for p in paint if p.feature_id != old_s.id]
        rect = st_rectangle(s_new - old_s.width_m / 2, s_new + old_s.width_m / 2, t_lo, t_hi)
        paint.append(
            PaintPatch(
                map_polygon(frame.line, rect), "paint_white", wear[0] if wear else 0.0, new_s.id
            )
        )
        replaced[old_s.id] = new_s
        records.append(
            _record(
                "geometry_changed",
                "stop_lines",
                old_s,
                new_s,
                f"stop line moved {shift:.2f} m back along its approach",
            )
        )
    else:  # no stop line (highway): a bare pole moved along the road instead
        if len(bare) < 3:
            raise ValueError("scene needs a stop line or a third pole without a sign to move")
        old_p = bare[int(order[2])]
        shift = float(rng.uniform(1.0, 3.0))
        px, py = old_p.geometry.x - ox, old_p.geometry.y - oy
        (s_p,), (t_p,) = frame.line.project(np.array([px]), np.array([py]))
        nx_, ny_ = frame.line.offset_points(np.array([s_p + shift]), np.array([t_p]))
        dx, dy = float(nx_[0]) - px, float(ny_[0]) - py
        geom = shapely.Point(old_p.geometry.x + dx, old_p.geometry.y + dy, old_p.geometry.z)
        new_p = old_p.replace(
            geometry=geom, id=feature_id(old_p.id_prefix, geom, old_p.provenance.survey_id, "moved")
        )
        moved = []
        for srf in surfaces:
            if srf.feature_id == old_p.id:
                v = srf.vertices + np.array([dx, dy, 0.0])
                srf = dataclasses.replace(
                    srf, vertices=v, feature_id=new_p.id, name=srf.name.replace(old_p.id, new_p.id)
                )
            moved.append(srf)
        surfaces = moved
        replaced[old_p.id] = new_p
        records.append(
            _record(
                "geometry_changed",
                "poles",
                old_p,
                new_p,
                f"pole moved {shift:.2f} m along the road (no stop line in this scene)",
            )
        )

    # 5. the other bare pole removed
    surfaces = [s for s in surfaces if s.feature_id != gone_pole.id]
    replaced[gone_pole.id] = None
    records.append(
        _record(
            "deleted",
            "poles",
            gone_pole,
            None,
            f"pole ({gone_pole.height_m:.1f} m) without a sign removed",
        )
    )

    # rebuild the truth: same order, replaced in place, new features appended
    new_boundary_id = {old_b.id: new_b.id}
    layers = {}
    for name in (
        "lane_boundaries",
        "lanes",
        "road_edges",
        "stop_lines",
        "crosswalks",
        "road_arrows",
        "poles",
        "signs",
        "junctions",
    ):
        out = []
        for f in truth.layer(name):
            if f.id in replaced:
                if replaced[f.id] is not None:
                    out.append(replaced[f.id])
                continue
            if name == "lanes" and (
                f.left_boundary in new_boundary_id or f.right_boundary in new_boundary_id
            ):
                f = f.replace(
                    left_boundary=new_boundary_id.get(f.left_boundary, f.left_boundary),
                    right_boundary=new_boundary_id.get(f.right_boundary, f.right_boundary),
                )
            out.append(f)
        out += [f for f in inserted if f.layer == name]
        layers[name] = tuple(out)
    new_truth = truth.replace(**layers)
    metadata = {**scene.metadata, "changes_seed": seed, "changes": records}
    changed = dataclasses.replace(
        scene, surfaces=tuple(surfaces), paint=tuple(paint), truth=new_truth, metadata=metadata
    )
    return changed, records
