"""Traffic signs: flat, highly retro-reflective panels above the road side.

1. :func:`retroreflective_mask`: among the points at least ``min_height_m`` above the ground,
   those whose intensity is ``candidate_ratio`` times the median intensity of such points at
   the same range (or scan angle) from the scanner (:func:`intensity_ratio`).
2. :func:`panel_clusters`: those points joined in ``voxel_m`` voxels (26-connected components);
   a cluster's face is its evenly bright points (``face_share``), and their median ratio must
   reach ``retro_ratio``: sign sheeting returns about ten times more than metal, bark, leaves
   or car paint at any range.
3. :func:`fit_panel`: a plane through each cluster (PCA, trimmed); a panel is thin
   (``max_thickness_m``), near vertical (``max_lean_deg``) and of a sign's size. Its facing is
   the plane normal turned toward the scanner (azimuth clockwise from grid north), its centre
   and size the middle and extent of the outline in the panel plane.
4. :func:`panel_shape`: the outline's convex hull against its bounding box: a triangle fills
   half of it (apex up or down by where the outline is wide), a rectangle all of it; a circle
   and an octagon (flat top) both fill about 80 %, and tell apart by the outline's reach toward
   the octagon's corners (22.5° off the axes) against its reach along the axes and diagonals.
5. :func:`sign_class`: GB 5768.2 category from the shape (octagon: stop, inverted triangle:
   yield, triangle: warning, rectangle: guide); a circle needs colour (red ring: prohibition,
   blue: mandatory) and is ``unknown`` without it.
6. :func:`link_poles`: a panel belongs to the nearest pole whose axis is within ``pole_link_m``
   of its centre and which reaches its height.

>>> uv = np.mgrid[-0.4:0.4:0.03, -0.4:0.4:0.03].reshape(2, -1).T
>>> disc = uv[np.hypot(uv[:, 0], uv[:, 1]) <= 0.4]
>>> triangle = uv[np.abs(uv[:, 0]) <= (0.4 - uv[:, 1]) / 2]  # apex up at v = 0.4
>>> panel_shape(disc)[0].value, panel_shape(triangle)[0].value
('circle', 'triangle')
>>> sign_class(SignShape.CIRCLE).value, sign_class(SignShape.OCTAGON).value
('unknown', 'stop')
>>> panel_clusters(np.empty((0, 3)))
[]

The sheeting is on the face only: a panel whose face the scanner never saw (a sign for the
other direction, seen from behind) is found as a flat, sign-sized, non-reflective plane through
the axis of a detected pole (``seen_from_back``; its class comes from the shape alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import shapely
import shapely.affinity
from scipy.spatial import cKDTree
from shapely import MultiPoint

from pipeline.model import SignClass, SignShape
from pipeline.poles import PoleFit, grid_components

__all__ = [
    "Panel",
    "SignOptions",
    "colour_name",
    "find_signs",
    "fit_panel",
    "intensity_ratio",
    "link_poles",
    "panel_clusters",
    "panel_shape",
    "retroreflective_mask",
    "sign_class",
]


@dataclass(frozen=True, slots=True)
class SignOptions:
    """Sign detection parameters (metres unless named otherwise).

    ``candidate_ratio``: a candidate sign point's intensity over the median of the points above
    the ground at the same range or scan angle (:func:`intensity_ratio`); ``retro_ratio``: the
    least median ratio of a panel's face points (sheeting returns about ten times more than
    metal, bark, leaves or car paint); ``face_share``: of a cluster of such points, those at least
    this share of its 90th-percentile intensity are the face; ``min_height_m``: candidate points
    at least this high above the ground; ``min_centre_height_m``: lowest panel centre.
    ``voxel_m``: voxel joining a panel's points (scan lines on a panel may be 0.15 m apart);
    ``min_points``: fewest points of a panel.
    ``max_thickness_m``: largest 1-sigma spread off the panel plane; ``max_lean_deg``: largest
    lean of the panel from vertical; ``min_size_m``/``max_size_m``: smallest / largest panel
    extent (a pole's near side seen as a strip is narrower than a sign); ``max_strip_share``: the
    largest share of a panel's points within its middle fifth across (a pole with a lamp head
    beside it has most).
    ``rectangle_fill``/``triangle_fill``: hull-to-box area ratios above / below which the
    outline is a rectangle / a triangle; ``triangle_taper``: an outline whose width tapers by
    this share from one end to the other (see :func:`panel_shape`) is a triangle whatever its
    fill (a sparse far panel); ``octagon_ratio``: corner-to-side reach ratio from which a round
    outline is an octagon. ``pole_link_m``: largest distance from a panel centre to its pole's
    axis (2D). ``back_reach_m``: how far from a pole's axis its panels' backs are looked for;
    ``back_min_size_m``: smallest extent (both ways) of a panel seen from the back.
    """

    candidate_ratio: float = 3.0
    retro_ratio: float = 5.0
    face_share: float = 0.4
    min_height_m: float = 1.0
    min_centre_height_m: float = 1.5
    voxel_m: float = 0.3
    min_points: int = 20
    max_thickness_m: float = 0.04
    max_lean_deg: float = 20.0
    min_size_m: float = 0.3
    max_strip_share: float = 0.6
    max_size_m: float = 6.0
    rectangle_fill: float = 0.9
    triangle_fill: float = 0.6
    triangle_taper: float = 0.5
    octagon_ratio: float = 1.035
    pole_link_m: float = 0.5
    back_reach_m: float = 2.0
    back_min_size_m: float = 0.35


@dataclass(frozen=True, slots=True, eq=False)
class Panel:
    """A sign panel: ``centre`` (x, y, z metres, the survey CRS) of its face, unit ``normal``
    (pointing out of the face), ``facing_deg`` (the normal's azimuth, clockwise from grid north),
    ``width_m`` and ``height_m`` of its outline, ``shape``, the ``index`` of its points in the
    array it was fitted from, ``thickness_m`` (1-sigma off the plane), the outline measures
    ``fill`` and ``corner_ratio`` (see :func:`panel_shape`), and ``seen_from_back`` when only
    its back was scanned (found on a pole, not by its sheeting)."""

    centre: tuple[float, float, float]
    normal: tuple[float, float, float]
    facing_deg: float
    width_m: float
    height_m: float
    shape: SignShape
    index: np.ndarray
    thickness_m: float
    fill: float
    corner_ratio: float
    seen_from_back: bool = False


def intensity_ratio(intensity: np.ndarray, covariate: np.ndarray | None = None) -> np.ndarray:
    """Each point's intensity over the reference level at its ``covariate`` (range metres or scan
    angle; None: one level for all), among points above the ground.

    The reference is the median intensity in 30 quantile bins of the covariate, taken from the
    far bins toward the near ones so that a bin holds at most 1.25 times the level of the next
    farther one: where one large sign supplies most points at some range (passed at arm's
    length), its own intensity would otherwise be the reference.

    >>> float(intensity_ratio(np.r_[np.full(90, 1000), np.full(10, 9000)])[-1])
    9.0
    """
    intensity = np.asarray(intensity, dtype=np.float64)
    if len(intensity) == 0:
        return np.zeros(0)
    cov = np.zeros(len(intensity)) if covariate is None else np.asarray(covariate, np.float64)
    nbins = int(max(1, min(30, len(cov) // 200)))
    edges = np.unique(np.quantile(cov, np.linspace(0.0, 1.0, nbins + 1)))
    if len(edges) < 2:
        return intensity / max(float(np.median(intensity)), 1.0)
    which = np.clip(np.searchsorted(edges, cov, side="right") - 1, 0, len(edges) - 2)
    knots, values = [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() >= 20:
            knots.append(float(np.median(cov[sel])))
            values.append(float(np.median(intensity[sel])))
    for k in range(len(values) - 2, -1, -1):
        values[k] = min(values[k], 1.25 * values[k + 1])
    return intensity / np.maximum(np.interp(cov, knots, values), 1.0)


def retroreflective_mask(
    intensity: np.ndarray,
    covariate: np.ndarray | None = None,
    options: SignOptions | None = None,
) -> np.ndarray:
    """Boolean mask of the candidate sign points among points above the ground: an
    :func:`intensity_ratio` of at least ``candidate_ratio``.

    >>> i = np.r_[np.full(90, 1000), np.full(10, 9000)]
    >>> int(retroreflective_mask(i).sum())
    10
    >>> retroreflective_mask(np.empty(0)).shape
    (0,)
    """
    o = options or SignOptions()
    return intensity_ratio(intensity, covariate) >= o.candidate_ratio


def panel_clusters(xyz: np.ndarray, options: SignOptions | None = None) -> list[np.ndarray]:
    """Index arrays of the clusters of ``xyz`` (n, 3 metres: retro-reflective points) joined in
    ``voxel_m`` voxels, each with at least ``min_points`` points."""
    o = options or SignOptions()
    if len(xyz) == 0:
        return []
    labels = grid_components(np.floor(np.asarray(xyz) / o.voxel_m).astype(np.int64))
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    return [g for g in np.split(order, cuts) if len(g) >= o.min_points]


def _plane(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(centroid, unit normal, 1-sigma off-plane spread, inlier mask) of a trimmed PCA plane."""
    keep = np.ones(len(pts), dtype=bool)
    for _ in range(3):
        c = pts[keep].mean(axis=0)
        _, vecs = np.linalg.eigh(np.cov((pts[keep] - c).T))
        n = vecs[:, 0]
        dist = (pts - c) @ n
        sigma = 1.4826 * float(np.median(np.abs(dist[keep])))
        new = np.abs(dist) <= max(3.0 * sigma, 0.02)
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    c = pts[keep].mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((pts[keep] - c).T))
    n = vecs[:, 0]
    return c, n, float(np.std((pts[keep] - c) @ n)), keep


def fit_panel(
    xyz: np.ndarray,
    index: np.ndarray | None = None,
    toward_xy: np.ndarray | None = None,
    options: SignOptions | None = None,
) -> Panel | None:
    """Fit a sign panel to the points ``xyz`` (n, 3 metres; ``index`` their indices to keep in
    the result). ``toward_xy`` is a horizontal vector from the panel toward the scanner (or the
    traffic it faces) that the face normal is turned to; without it the normal's sign is
    arbitrary. None when the points are not a panel (not flat, not vertical, too small or too
    large).

    >>> fit_panel(np.zeros((2, 3))) is None
    True
    """
    o = options or SignOptions()
    xyz = np.asarray(xyz, dtype=np.float64)
    index = np.arange(len(xyz)) if index is None else np.asarray(index)
    if len(xyz) < max(o.min_points, 3):
        return None
    c, n, thickness, keep = _plane(xyz)
    if thickness > o.max_thickness_m or abs(n[2]) > math.sin(math.radians(o.max_lean_deg)):
        return None
    n = n / np.linalg.norm(n)
    if toward_xy is not None and float(n[:2] @ np.asarray(toward_xy, np.float64)[:2]) < 0:
        n = -n
    u = np.array([-n[1], n[0], 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    rel = xyz[keep] - c
    uv = np.column_stack([rel @ u, rel @ v])
    shape, w, h, centre_uv, fill, ratio = _outline(uv, o)
    if max(w, h) > o.max_size_m or min(w, h) < o.min_size_m:
        return None
    # a face spreads its points across its width; a pole seen with a lamp head beside it does not
    if np.mean(np.abs(uv[:, 0] - np.median(uv[:, 0])) < 0.1 * w) > o.max_strip_share:
        return None
    centre = c + centre_uv[0] * u + centre_uv[1] * v
    facing = math.degrees(math.atan2(n[0], n[1])) % 360.0
    return Panel(
        (float(centre[0]), float(centre[1]), float(centre[2])),
        (float(n[0]), float(n[1]), float(n[2])),
        round(facing, 2),
        round(w, 3),
        round(h, 3),
        shape,
        index[keep],
        round(thickness, 4),
        round(fill, 3),
        round(ratio, 3),
    )


def panel_shape(
    uv: np.ndarray, options: SignOptions | None = None
) -> tuple[SignShape, float, float]:
    """The shape of a panel outline from its points ``uv`` (m, 2 metres in the panel plane: u to
    the right of a viewer facing the panel, v up), with the hull-to-box ``fill`` and the
    octagon ``corner_ratio`` it was decided on (see the module docstring).

    >>> sq = np.mgrid[0:1:0.02, 0:0.6:0.02].reshape(2, -1).T
    >>> panel_shape(sq)[0].value
    'rectangle'
    """
    shape, _, _, _, fill, ratio = _outline(
        np.asarray(uv, dtype=np.float64), options or SignOptions()
    )
    return shape, fill, ratio


def _outline(
    uv: np.ndarray, o: SignOptions
) -> tuple[SignShape, float, float, np.ndarray, float, float]:
    """(shape, width, height, bbox centre (u, v), fill, corner ratio) of the outline points."""
    su, sv = _spacing(uv)
    # the hull of the samples falls short of the outline by about half their spacing, which
    # differs across and along the scan lines: buffer it in coordinates scaled by the spacing
    scale = np.array([max(su, 1e-6), max(sv, 1e-6)])
    hull = MultiPoint(uv / scale).convex_hull.buffer(0.5, join_style="mitre")
    hull = shapely.affinity.scale(hull, scale[0], scale[1], origin=(0, 0))
    x0, y0, x1, y1 = hull.bounds
    w, h = x1 - x0, y1 - y0
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    fill = float(hull.area / max(w * h, 1e-12))
    ratio = 1.0
    taper = _taper(uv)
    if fill <= o.triangle_fill or abs(taper) >= o.triangle_taper:
        # apex up: the outline is wide at the bottom
        shape = SignShape.TRIANGLE if taper >= 0 else SignShape.INVERTED_TRIANGLE
    elif fill >= o.rectangle_fill:
        shape = SignShape.RECTANGLE
    else:
        ratio = _corner_ratio(np.asarray(shapely.get_coordinates(hull)), centre, w, h)
        shape = SignShape.OCTAGON if ratio >= o.octagon_ratio else SignShape.CIRCLE
    return shape, float(w), float(h), centre, fill, float(ratio)


def _spacing(uv: np.ndarray, k: int = 30) -> tuple[float, float]:
    """Typical sample spacing (metres) across u and along v: for each point, the nearest of its
    ``k`` neighbours lying more across than along (resp. the reverse), as the median over the
    points. Scan lines on a panel are often far sparser one way than the other.

    >>> g = np.mgrid[0:1:0.1, 0:1:0.02].reshape(2, -1).T
    >>> [round(v, 2) for v in _spacing(g)]
    [0.1, 0.02]
    """
    if len(uv) < 3:
        return 0.0, 0.0
    k = min(k, len(uv) - 1)
    _, idx = cKDTree(uv).query(uv, k=k + 1)
    d = uv[idx[:, 1:]] - uv[:, None, :]
    du, dv = np.abs(d[..., 0]), np.abs(d[..., 1])
    across = np.where(du > dv, du, np.inf).min(axis=1)
    along = np.where(dv >= du, dv, np.inf).min(axis=1)
    su = float(np.median(across[np.isfinite(across)])) if np.isfinite(across).any() else 0.0
    sv = float(np.median(along[np.isfinite(along)])) if np.isfinite(along).any() else 0.0
    return su, sv


def _taper(uv: np.ndarray) -> float:
    """(bottom width - top width) / the wider of the two, over the lowest and highest fifth of
    the outline's height: about 0.8 for a triangle (apex up), -0.8 apex down, 0 for a circle."""
    v = uv[:, 1]
    lo, hi = v.min(), v.max()
    band = 0.2 * (hi - lo)
    bottom, top = uv[v <= lo + band, 0], uv[v >= hi - band, 0]
    wb = float(np.ptp(bottom)) if len(bottom) else 0.0
    wt = float(np.ptp(top)) if len(top) else 0.0
    return (wb - wt) / max(wb, wt, 1e-12)


def _corner_ratio(ring: np.ndarray, centre: np.ndarray, w: float, h: float) -> float:
    """Mean reach of the outline (scaled to a unit box) toward a flat-top octagon's corners
    (22.5° + k 45°) over its mean reach along the axes and diagonals (k 45°): 1.08 for an
    octagon, 1.0 for a circle."""
    p = (ring - centre) / np.array([w / 2, h / 2])
    ang = np.radians(np.arange(16) * 22.5)
    reach = (p @ np.vstack([np.cos(ang), np.sin(ang)])).max(axis=0)
    return float(reach[1::2].mean() / max(reach[0::2].mean(), 1e-12))


_SHAPE_CLASS = {
    SignShape.OCTAGON: SignClass.STOP,
    SignShape.INVERTED_TRIANGLE: SignClass.YIELD,
    SignShape.TRIANGLE: SignClass.WARNING,
    SignShape.RECTANGLE: SignClass.GUIDE,
}


def colour_name(rgb: np.ndarray | None, share: float = 0.15) -> str | None:
    """``"red"`` or ``"blue"`` when at least ``share`` of the colours ``rgb`` (m, 3, any scale)
    are clearly red (a prohibition ring is about 40 % of its disc), resp. twice that share
    clearly blue; None otherwise (white, grey, yellow, green, no colour).

    >>> colour_name(np.array([[200, 30, 35]] * 4 + [[240, 240, 240]] * 6))
    'red'
    >>> colour_name(np.array([[30, 80, 180]] * 9)), colour_name(None)
    ('blue', None)
    """
    if rgb is None or len(rgb) == 0:
        return None
    rgb = np.asarray(rgb, dtype=np.float64)
    rgb = rgb[np.all(np.isfinite(rgb), axis=1) & (rgb.sum(axis=1) > 0)]
    if len(rgb) == 0:
        return None
    r, g, b = rgb.T
    red = (r > 1.6 * g) & (r > 1.6 * b)
    blue = (b > 1.3 * r) & (b > 1.1 * g)
    if red.mean() >= share and red.mean() >= blue.mean():
        return "red"
    if blue.mean() >= 2 * share:
        return "blue"
    return None


def sign_class(shape: SignShape, rgb: np.ndarray | None = None) -> SignClass:
    """GB 5768.2 category of a panel from its ``shape`` and, for a circle, the colours ``rgb``
    (m, 3) of its face: red prohibition, blue mandatory, ``unknown`` without colour."""
    if shape != SignShape.CIRCLE:
        return _SHAPE_CLASS[shape]
    return {"red": SignClass.PROHIBITION, "blue": SignClass.MANDATORY}.get(
        colour_name(rgb) or "", SignClass.UNKNOWN
    )


def link_poles(
    panels: list[Panel], poles: list[PoleFit], options: SignOptions | None = None
) -> list[int | None]:
    """For each panel, the index in ``poles`` of the pole carrying it: the nearest pole axis
    within ``pole_link_m`` (2D) of the panel centre whose height spans the panel centre (0.5 m
    slack at the top); None when there is none.

    >>> link_poles([], [])
    []
    """
    o = options or SignOptions()
    if not poles:
        return [None] * len(panels)
    axes = np.array([(p.x, p.y) for p in poles])
    out: list[int | None] = []
    for panel in panels:
        x, y, z = panel.centre
        d = np.hypot(axes[:, 0] - x, axes[:, 1] - y)
        ok = [
            k
            for k in np.argsort(d)
            if d[k] <= o.pole_link_m and poles[k].z <= z <= poles[k].z + poles[k].height_m + 0.5
        ]
        out.append(int(ok[0]) if ok else None)
    return out


#: maps a panel's centroid (3,) to a horizontal vector its face should point to
FaceHint = Callable[[np.ndarray], np.ndarray]


def find_signs(
    xyz: np.ndarray,
    height: np.ndarray,
    intensity: np.ndarray,
    *,
    covariate: np.ndarray | None = None,
    viewer: np.ndarray | None = None,
    face_hint: FaceHint | None = None,
    poles: Sequence[PoleFit] = (),
    options: SignOptions | None = None,
) -> list[Panel]:
    """Sign panels among the points ``xyz`` (n, 3 metres) above the ground, with their
    ``height`` (n,) above it and ``intensity`` (n,).

    ``covariate`` (n,): range from the scanner (metres) or scan angle, for the intensity
    reference; ``viewer`` (n, 3): the scanner position each point was seen from, which turns a
    face toward where it was seen from (a back away from it); without it ``face_hint`` gives the
    direction, else the normal's sign is arbitrary. ``poles``: detected poles, whose panels are
    also looked for from the back. Panels are ordered by x.

    >>> find_signs(np.empty((0, 3)), np.empty(0), np.empty(0))
    []
    """
    o = options or SignOptions()
    xyz = np.asarray(xyz, dtype=np.float64)
    height = np.asarray(height, dtype=np.float64)
    if len(xyz) == 0:
        return []
    ground = xyz[:, 2] - height
    ratio = intensity_ratio(intensity, covariate)
    retro = (ratio >= o.candidate_ratio) & (height >= o.min_height_m)

    def hint(idx: np.ndarray, back: bool) -> np.ndarray | None:
        c = xyz[idx].mean(axis=0)
        if viewer is not None:
            toward = (np.asarray(viewer)[idx].mean(axis=0) - c)[:2]
            return -toward if back else toward
        return None if face_hint is None else np.asarray(face_hint(c), np.float64)

    def high_enough(p: Panel) -> bool:
        return p.centre[2] - float(np.median(ground[p.index])) >= o.min_centre_height_m

    panels: list[Panel] = []
    cand = np.flatnonzero(retro)
    intensity = np.asarray(intensity, dtype=np.float64)
    for cluster in panel_clusters(xyz[cand], o):
        idx = cand[cluster]
        # the face is evenly bright; a bright pole or bracket beside it is far darker
        idx = idx[intensity[idx] >= o.face_share * np.quantile(intensity[idx], 0.9)]
        if len(idx) < o.min_points or np.median(ratio[idx]) < o.retro_ratio:
            continue
        p = fit_panel(xyz[idx], idx, hint(idx, back=False), o)
        if p is not None and high_enough(p):
            panels.append(p)
    if poles:
        rest = np.flatnonzero(~retro & (height >= o.min_height_m))
        for p in _pole_backs(xyz, rest, poles, panels, lambda i: hint(i, back=True), o):
            if high_enough(p):
                panels.append(p)
    return sorted(panels, key=lambda p: p.centre)


def _pole_backs(
    xyz: np.ndarray,
    rest: np.ndarray,
    poles: Sequence[PoleFit],
    found: list[Panel],
    hint: Callable[[np.ndarray], np.ndarray | None],
    o: SignOptions,
) -> list[Panel]:
    """Panels seen from the back on ``poles``: flat, sign-sized planes of the non-reflective
    points ``rest`` (indices into ``xyz``) that pass through a pole's axis, away from the
    panels ``found`` already. The pole hides a strip of the back, so the flat pieces on either
    side of it that share one plane are joined first."""
    if len(rest) == 0:
        return []
    tree = cKDTree(xyz[rest, :2])
    max_lean = math.sin(math.radians(o.max_lean_deg))
    out: list[Panel] = []
    for pole in poles:
        near = rest[tree.query_ball_point((pole.x, pole.y), o.back_reach_m)]
        if len(near) < o.min_points:
            continue
        axis = np.array([pole.x, pole.y])
        d = np.hypot(xyz[near, 0] - pole.x, xyz[near, 1] - pole.y)
        near = near[(d > pole.radius_m + 0.08) & (xyz[near, 2] <= pole.z + pole.height_m + 0.3)]
        pieces: list[tuple[np.ndarray, np.ndarray, tuple[float, float]]] = []
        for cluster in panel_clusters(xyz[near], replace(o, min_points=8)):
            idx = near[cluster]
            c, n, thickness, keep = _plane(xyz[idx])
            if thickness > o.max_thickness_m or abs(n[2]) > max_lean:
                continue
            nh = n[:2] / max(float(np.hypot(*n[:2])), 1e-12)
            if abs(float((axis - c[:2]) @ nh)) > pole.radius_m + 0.1:
                continue  # not through the pole: a plane beside it
            z = xyz[idx[keep], 2]
            pieces.append((idx[keep], nh, (float(z.min()), float(z.max()))))
        # join pieces of one plane (same normal, overlapping heights)
        groups: list[list[int]] = []
        for k, (_, nk, zk) in enumerate(pieces):
            for g in groups:
                _, ng, zg = pieces[g[0]]
                if abs(float(nk @ ng)) >= math.cos(math.radians(10.0)) and (
                    min(zk[1], zg[1]) - max(zk[0], zg[0]) > 0
                ):
                    g.append(k)
                    break
            else:
                groups.append([k])
        for g in groups:
            idx = np.concatenate([pieces[k][0] for k in g])
            p = fit_panel(xyz[idx], idx, hint(idx), o)
            if p is None or min(p.width_m, p.height_m) < o.back_min_size_m:
                continue
            c = np.array(p.centre)
            if np.hypot(*(c[:2] - axis)) > o.pole_link_m:
                continue
            if any(np.linalg.norm(c - np.array(q.centre)) < 0.5 for q in [*found, *out]):
                continue
            out.append(replace(p, seen_from_back=True))
    return out
