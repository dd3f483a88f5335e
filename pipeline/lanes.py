"""Lanes from lane boundaries in the (s, t) road frame: centrelines, widths, direction, graph.

A lane lies between two neighbouring boundaries ``min_width_m``-``max_width_m`` apart over the
stretch where both exist; where either boundary starts or ends (for instance where a dashed line
becomes solid) the lane is split, and the two parts are predecessor and successor. Lanes left of
the centre line (the double or yellow line; positive t side) run against the trajectory's travel
direction, so their centrelines are digitised with decreasing s. Neighbours are lanes of the same
direction sharing a boundary.

>>> a = FrameLine("a", np.array([0.0, 20.0]), np.array([0.0, 0.0]), np.zeros(2))
>>> b = FrameLine("b", np.array([0.0, 20.0]), np.array([3.5, 3.5]), np.zeros(2))
>>> [(round(p.s[0]), round(p.s[-1]), float(p.width.mean())) for p in lane_pieces([a, b])]
[(0, 20, 3.5)]
>>> lane_pieces([])
[]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FrameLine",
    "LaneOptions",
    "LanePiece",
    "junction_lanes",
    "lane_graph",
    "lane_pieces",
]


@dataclass(frozen=True, slots=True)
class LaneOptions:
    """``min_width_m``/``max_width_m``: lane width range; ``step_m``: centreline vertex spacing;
    ``join_m``: lanes whose ends are this close (metres along and across) are connected;
    ``max_junction_m``: longest gap bridged by a lane through a junction (no boundaries)."""

    min_width_m: float = 2.3
    max_width_m: float = 4.0
    step_m: float = 1.0
    join_m: float = 1.0
    max_junction_m: float = 60.0


@dataclass(frozen=True, slots=True, eq=False)
class FrameLine:
    """A boundary in the road frame: its feature id and vertices (s, t, z), s increasing."""

    id: str
    s: np.ndarray
    t: np.ndarray
    z: np.ndarray

    def t_at(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.t)

    def z_at(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.z)


@dataclass(slots=True, eq=False)
class LanePiece:
    """A lane between ``right`` and ``left`` boundaries (ids; by increasing t) over ``s``."""

    right: str
    left: str
    s: np.ndarray
    t: np.ndarray
    z: np.ndarray
    width: np.ndarray
    backward: bool = False
    in_junction: bool = False
    predecessors: list[int] = field(default_factory=list)
    successors: list[int] = field(default_factory=list)
    left_neighbour: int | None = None
    right_neighbour: int | None = None


def lane_pieces(lines: list[FrameLine], options: LaneOptions | None = None) -> list[LanePiece]:
    """Lanes between neighbouring boundaries, split where any boundary starts or ends."""
    options = options or LaneOptions()
    if len(lines) < 2:
        return []
    cuts = np.unique(np.concatenate([[ln.s[0], ln.s[-1]] for ln in lines]))
    # a cut less than 1 m after the last one kept is dropped, so pieces stay contiguous
    kept = [float(cuts[0])]
    for c in cuts[1:]:
        if c - kept[-1] >= 1.0:
            kept.append(float(c))
    pieces: list[LanePiece] = []
    for a, b in itertools.pairwise(kept):
        mid = 0.5 * (a + b)
        present = [ln for ln in lines if ln.s[0] <= mid <= ln.s[-1]]
        present.sort(key=lambda ln: float(ln.t_at(mid)))
        for lo, hi in itertools.pairwise(present):
            n = max(2, int(np.ceil((b - a) / options.step_m)) + 1)
            s = np.linspace(a, b, n)
            tl, th = lo.t_at(s), hi.t_at(s)
            width = th - tl
            if not (options.min_width_m <= float(np.median(width)) <= options.max_width_m):
                continue
            z = 0.5 * (lo.z_at(s) + hi.z_at(s))
            pieces.append(LanePiece(lo.id, hi.id, s, 0.5 * (tl + th), z, np.round(width, 3)))
    return _merge_same(pieces)


def _merge_same(pieces: list[LanePiece]) -> list[LanePiece]:
    """Join consecutive pieces between the same two boundaries."""
    pieces.sort(key=lambda p: (p.right, p.left, p.s[0]))
    out: list[LanePiece] = []
    for p in pieces:
        q = out[-1] if out else None
        if q and q.right == p.right and q.left == p.left and abs(q.s[-1] - p.s[0]) < 1e-6:
            q.s = np.r_[q.s, p.s[1:]]
            q.t = np.r_[q.t, p.t[1:]]
            q.z = np.r_[q.z, p.z[1:]]
            q.width = np.r_[q.width, p.width[1:]]
        else:
            out.append(p)
    out.sort(key=lambda p: (p.s[0], p.t[0]))
    return out


def lane_graph(
    pieces: list[LanePiece], centre_t: float | None, options: LaneOptions | None = None
) -> None:
    """Set direction, successors/predecessors and neighbours of ``pieces`` in place.

    ``centre_t`` is the lateral offset of the centre line (None: all lanes run forward).
    """
    options = options or LaneOptions()
    for p in pieces:
        p.backward = centre_t is not None and float(np.median(p.t)) > centre_t
    side_by_side: list[tuple[float, int, int]] = []
    for i, p in enumerate(pieces):
        for j, q in enumerate(pieces):
            if i == j or p.backward != q.backward:
                continue
            if abs(p.s[-1] - q.s[0]) <= options.join_m and abs(p.t[-1] - q.t[0]) <= options.join_m:
                # p ends where q starts along s
                first, second = (i, j) if not p.backward else (j, i)
                if second not in pieces[first].successors:
                    pieces[first].successors.append(second)
                    pieces[second].predecessors.append(first)
            overlap = min(p.s[-1], q.s[-1]) - max(p.s[0], q.s[0])
            shares = bool(p.left) and p.left == q.right
            if p.in_junction and q.in_junction:
                gap = float(np.median(q.t) - np.median(p.t))
                shares = 0.5 * float(np.median(p.width)) < gap < 1.5 * float(np.median(p.width))
            if overlap > 1.0 and shares:
                side_by_side.append((overlap, i, j))  # q is on p's +t side
    # one neighbour per side: pair by longest overlap, so the links are mutual
    for _, i, j in sorted(side_by_side, key=lambda c: (-c[0], c[1], c[2])):
        p, q = pieces[i], pieces[j]
        if p.backward:
            if p.right_neighbour is None and q.left_neighbour is None:
                p.right_neighbour, q.left_neighbour = j, i
        elif p.left_neighbour is None and q.right_neighbour is None:
            p.left_neighbour, q.right_neighbour = j, i


def junction_lanes(pieces: list[LanePiece], options: LaneOptions | None = None) -> list[LanePiece]:
    """Lanes through a junction: where a lane ends and another starts further along s at the
    same lateral offset (within half a lane width) with no lane in between, a lane without
    boundaries joins them (straight in the road frame, widths interpolated).

    >>> mk = lambda a, b: LanePiece("r", "l", np.array([a, b]), np.zeros(2), np.zeros(2),
    ...                             np.full(2, 3.5))
    >>> [(float(p.s[0]), float(p.s[-1])) for p in junction_lanes([mk(0, 10), mk(40, 50)])]
    [(10.0, 40.0)]
    """
    options = options or LaneOptions()
    out: list[LanePiece] = []
    for p in pieces:
        best = None
        for q in pieces:
            gap = q.s[0] - p.s[-1]
            if q is p or gap <= options.join_m or gap > options.max_junction_m:
                continue
            if abs(q.t[0] - p.t[-1]) > 0.5 * min(p.width[-1], q.width[0]):
                continue
            if best is None or q.s[0] < best.s[0]:
                best = q
        if best is None:
            continue
        blocked = any(
            r is not p
            and r is not best
            and r.s[0] < best.s[0]
            and r.s[-1] > p.s[-1]
            and abs(float(np.interp(0.5 * (p.s[-1] + best.s[0]), r.s, r.t)) - p.t[-1]) < 1.0
            for r in pieces
        )
        if blocked:
            continue
        n = max(2, int(np.ceil((best.s[0] - p.s[-1]) / options.step_m)) + 1)
        s = np.linspace(p.s[-1], best.s[0], n)
        t = np.linspace(p.t[-1], best.t[0], n)
        z = np.linspace(p.z[-1], best.z[0], n)
        w = np.round(np.linspace(p.width[-1], best.width[0], n), 3)
        out.append(LanePiece("", "", s, t, z, w, in_junction=True))
    return out
