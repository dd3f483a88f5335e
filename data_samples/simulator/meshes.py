"""Triangle-mesh primitives for the simulated world, in local metres (x east, y north, z up).

Every function returns ``(vertices, triangles)``: float64 (n, 3) and int32 (m, 3), with
counter-clockwise winding seen from outside (upward for ground sheets). Closed solids (boxes,
cylinders, ellipsoids, swept profiles with caps) share every edge between exactly two triangles.

>>> v, t = box((0.0, 0.0), 0.0, 2.0, 1.0, 1.0, 0.0)
>>> v.shape, t.shape, is_closed(t)
((8, 3), (12, 3), True)
>>> merge([])[0].shape
(0, 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from pipeline.refline import ReferenceLine

__all__ = [
    "Mesh",
    "box",
    "cylinder",
    "ellipsoid",
    "is_closed",
    "merge",
    "panel",
    "st_grid",
    "swept_profile",
    "vertical_strip",
]

Mesh = tuple[np.ndarray, np.ndarray]


def _mesh(vertices: np.ndarray, triangles: np.ndarray) -> Mesh:
    return np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(
        triangles, dtype=np.int32
    )


def merge(meshes: Sequence[Mesh]) -> Mesh:
    """Concatenate meshes into one (indices shifted)."""
    if not meshes:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int32)
    verts, tris, offset = [], [], 0
    for v, t in meshes:
        verts.append(v)
        tris.append(t + offset)
        offset += len(v)
    return _mesh(np.concatenate(verts), np.concatenate(tris))


def is_closed(triangles: np.ndarray) -> bool:
    """True when every directed edge has exactly one opposite partner (a closed, oriented mesh).

    >>> is_closed(np.array([[0, 1, 2]]))
    False
    """
    tri = np.asarray(triangles, dtype=np.int64)
    if len(tri) == 0:
        return False
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    key = edges[:, 0] * (edges.max() + 1) + edges[:, 1]
    rev = edges[:, 1] * (edges.max() + 1) + edges[:, 0]
    if len(np.unique(key)) != len(key):
        return False
    return bool(np.isin(rev, key).all())


def box(
    center_xy: tuple[float, float],
    z0: float,
    length: float,
    width: float,
    height: float,
    heading: float,
) -> Mesh:
    """A closed box on ``z0``: ``length`` along ``heading`` (rad CCW from +x), ``width`` across."""
    c, s = math.cos(heading), math.sin(heading)
    local = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=float) * (length / 2, width / 2)
    xy = np.column_stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c])
    xy += center_xy
    v = np.vstack(
        [np.column_stack([xy, np.full(4, z0)]), np.column_stack([xy, np.full(4, z0 + height)])]
    )
    t = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7)]
    for i in range(4):
        j = (i + 1) % 4
        t += [(i, j, j + 4), (i, j + 4, i + 4)]
    return _mesh(v, np.array(t))


def cylinder(x: float, y: float, z0: float, radius: float, height: float, facets: int = 16) -> Mesh:
    """A closed vertical cylinder (capped prism with ``facets`` sides) standing on ``z0``."""
    a = np.linspace(0.0, 2 * math.pi, facets, endpoint=False)
    ring = np.column_stack([x + radius * np.cos(a), y + radius * np.sin(a)])
    v = np.vstack(
        [
            np.column_stack([ring, np.full(facets, z0)]),
            np.column_stack([ring, np.full(facets, z0 + height)]),
            [(x, y, z0), (x, y, z0 + height)],
        ]
    )
    i = np.arange(facets)
    j = (i + 1) % facets
    n = facets
    side = np.concatenate([np.column_stack([i, j, j + n]), np.column_stack([i, j + n, i + n])])
    bottom = np.column_stack([np.full(n, 2 * n), j, i])
    top = np.column_stack([np.full(n, 2 * n + 1), i + n, j + n])
    return _mesh(v, np.concatenate([side, bottom, top]))


def _icosphere(subdivisions: int) -> Mesh:
    p = (1 + 5**0.5) / 2
    v = [
        (-1, p, 0),
        (1, p, 0),
        (-1, -p, 0),
        (1, -p, 0),
        (0, -1, p),
        (0, 1, p),
        (0, -1, -p),
        (0, 1, -p),
        (p, 0, -1),
        (p, 0, 1),
        (-p, 0, -1),
        (-p, 0, 1),
    ]
    f = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    verts = [np.array(x, dtype=float) / np.linalg.norm(x) for x in v]
    faces = f
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int, cache: dict[tuple[int, int], int] = cache) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    v_arr, f_arr = np.array(verts), np.array(faces)
    normal = np.cross(
        v_arr[f_arr[:, 1]] - v_arr[f_arr[:, 0]], v_arr[f_arr[:, 2]] - v_arr[f_arr[:, 0]]
    )
    inward = (normal * v_arr[f_arr].mean(axis=1)).sum(axis=1) < 0
    f_arr[inward] = f_arr[inward][:, ::-1]
    return v_arr, f_arr


_UNIT_SPHERE = {k: _icosphere(k) for k in (1, 2)}


def ellipsoid(
    center: tuple[float, float, float], radii: tuple[float, float, float], subdivisions: int = 2
) -> Mesh:
    """A closed ellipsoid (a scaled icosphere: 80 or 320 triangles)."""
    v, t = _UNIT_SPHERE[subdivisions]
    return _mesh(v * np.asarray(radii) + np.asarray(center), t.copy())


def panel(
    center: tuple[float, float, float],
    normal_xy: tuple[float, float],
    outline_uv: np.ndarray,
    thickness: float = 0.015,
) -> tuple[Mesh, Mesh]:
    """A vertical sign panel: (front, back) sheets of a convex outline.

    ``outline_uv`` (k, 2) is counter-clockwise as seen by a viewer facing the panel (u to the
    viewer's right, v up), in metres about the centre; the front faces ``normal_xy``; the back sheet
    lies ``thickness`` metres behind and faces the other way.
    """
    nx, ny = normal_xy
    norm = math.hypot(nx, ny)
    nx, ny = nx / norm, ny / norm
    u_axis = np.array([-ny, nx, 0.0])
    pts = (
        np.asarray(center)
        + outline_uv[:, :1] * u_axis
        + outline_uv[:, 1:2] * np.array([0.0, 0.0, 1.0])
    )
    k = len(outline_uv)
    fan = np.column_stack([np.zeros(k - 2, int), np.arange(1, k - 1), np.arange(2, k)])
    back = pts - thickness * np.array([nx, ny, 0.0])
    return _mesh(pts, fan), _mesh(back, fan[:, ::-1])


def st_grid(
    line: ReferenceLine,
    s: np.ndarray,
    t: np.ndarray,
    z_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Mesh:
    """An upward sheet over the (s, t) grid mapped through ``line``; heights ``z_of(s, t)``."""
    ss, tt = np.meshgrid(s, t, indexing="ij")
    x, y = line.offset_points(ss.ravel(), tt.ravel())
    v = np.column_stack([x, y, z_of(ss.ravel(), tt.ravel())])
    ns, nt = len(s), len(t)
    i, j = np.meshgrid(np.arange(ns - 1), np.arange(nt - 1), indexing="ij")
    a = (i * nt + j).ravel()
    b, c, d = a + nt, a + nt + 1, a + 1
    tri = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])
    return _mesh(v, tri)


def vertical_strip(bottom: np.ndarray, top: np.ndarray) -> Mesh:
    """A wall between two 3D polylines of equal length, facing the right of the traversal."""
    n = len(bottom)
    v = np.vstack([bottom, top])
    i = np.arange(n - 1)
    tri = np.concatenate(
        [np.column_stack([i, i + 1, i + 1 + n]), np.column_stack([i, i + 1 + n, i + n])]
    )
    return _mesh(v, tri)


def swept_profile(
    line: ReferenceLine,
    s: np.ndarray,
    profile_t: np.ndarray,
    profile_z: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
) -> Mesh:
    """A closed tube: a cross-section swept along ``line`` over stations ``s``, capped at both ends.

    ``profile_t`` (k,) lateral offsets of the section's corners, in order around the section;
    ``profile_z(s, t, i)`` the heights of corner ``i``. Winding is chosen so normals point outward.
    """
    k, ns = len(profile_t), len(s)
    rows = []
    for i, ti in enumerate(profile_t):
        x, y = line.offset_points(s, np.full(ns, ti))
        rows.append(np.column_stack([x, y, profile_z(s, np.full(ns, ti), i)]))
    v = np.stack(rows, axis=1).reshape(-1, 3)  # station-major
    tris = []
    st = np.arange(ns - 1)
    for i in range(k):
        j = (i + 1) % k
        a, b = st * k + i, st * k + j
        tris.append(np.column_stack([a, b, b + k]))
        tris.append(np.column_stack([a, b + k, a + k]))
    fan = np.column_stack([np.zeros(k - 2, int), np.arange(1, k - 1), np.arange(2, k)])
    tris.append(fan[:, ::-1])
    tris.append(fan + (ns - 1) * k)
    tri = np.concatenate(tris)
    # orient outward: compare with the centroid of each station's section
    centre = v.reshape(ns, k, 3).mean(axis=1)
    sample = tri[: 2 * (ns - 1)]
    nrm = np.cross(v[sample[:, 1]] - v[sample[:, 0]], v[sample[:, 2]] - v[sample[:, 0]])
    stations = np.concatenate([st, st])
    outward = (nrm * (v[sample[:, 0]] - centre[stations])).sum(axis=1).sum()
    if outward < 0:
        tri = tri[:, ::-1]
    return _mesh(v, tri)
