"""A curvilinear (s, t) frame along a polyline, such as a survey trajectory.

``s`` is the arc length (metres) along the polyline and ``t`` the lateral offset (metres),
positive to the left of the digitising direction. The polyline is resampled densely so that the
projection of a point is its nearest dense vertex refined along the local tangent.

>>> frame = RoadFrame.from_xy(np.array([[0.0, 0.0], [10.0, 0.0]]))
>>> s, t = frame.project(np.array([4.0]), np.array([1.5]))
>>> round(float(s[0]), 6), round(float(t[0]), 6)
(4.0, 1.5)
>>> x, y = frame.to_xy(np.array([4.0]), np.array([1.5]))
>>> round(float(x[0]), 6), round(float(y[0]), 6)
(4.0, 1.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

__all__ = ["RoadFrame"]


@dataclass(frozen=True, slots=True, eq=False)
class RoadFrame:
    """Dense vertices ``s`` (n,), ``xy`` (n, 2) and unit tangents ``tangent`` (n, 2), metres."""

    s: np.ndarray
    xy: np.ndarray
    tangent: np.ndarray
    tree: cKDTree

    @classmethod
    def from_xy(cls, xy: np.ndarray, *, step_m: float = 0.1, smooth_m: float = 2.0) -> RoadFrame:
        """A frame along the polyline ``xy`` (m, 2) metres, resampled every ``step_m`` and
        smoothed with a Gaussian of ``smooth_m`` sigma (metres of arc length).

        Repeated vertices are dropped; a polyline shorter than two distinct vertices raises
        ValueError.
        """
        xy = np.asarray(xy, dtype=np.float64)[:, :2]
        if len(xy) >= 2:
            keep = np.r_[True, np.hypot(*np.diff(xy, axis=0).T) > 1e-6]
            xy = xy[keep]
        if len(xy) < 2:
            raise ValueError("a road frame needs at least two distinct vertices")
        seg = np.hypot(*np.diff(xy, axis=0).T)
        s_in = np.r_[0.0, np.cumsum(seg)]
        n = max(2, int(np.ceil(s_in[-1] / step_m)) + 1)
        s = np.linspace(0.0, s_in[-1], n)
        dense = np.column_stack([np.interp(s, s_in, xy[:, 0]), np.interp(s, s_in, xy[:, 1])])
        sigma = smooth_m / max(s[1] - s[0], 1e-9)
        if sigma > 0.5 and n > 8:
            pad = int(4 * sigma) + 1
            k = min(pad, n - 1)
            head = dense[0] + (dense[0] - dense[k]) * np.arange(pad, 0, -1)[:, None] / k
            tail = dense[-1] + (dense[-1] - dense[-1 - k]) * np.arange(1, pad + 1)[:, None] / k
            padded = np.vstack([head, dense, tail])
            dense = gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[pad:-pad]
            seg = np.hypot(*np.diff(dense, axis=0).T)
            s = np.r_[0.0, np.cumsum(seg)]
        tangent = np.gradient(dense, axis=0)
        tangent /= np.maximum(np.hypot(*tangent.T), 1e-12)[:, None]
        return cls(s, dense, tangent, cKDTree(dense))

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def project(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s, t) metres of points (x, y); beyond the ends ``s`` extends along the end tangent."""
        pts = np.column_stack([np.ravel(x), np.ravel(y)]).astype(np.float64)
        if len(pts) == 0:
            return np.empty(0), np.empty(0)
        _, i = self.tree.query(pts)
        s = self.s[i].astype(np.float64)
        for _ in range(2):  # refine along the interpolated tangent
            base, tangent = self._base(s)
            d = pts - base
            s = s + d[:, 0] * tangent[:, 0] + d[:, 1] * tangent[:, 1]
        base, tangent = self._base(s)
        d = pts - base
        t = -d[:, 0] * tangent[:, 1] + d[:, 1] * tangent[:, 0]
        return s, t

    def _base(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point and unit tangent (n, 2) at arc lengths ``s``, extrapolated beyond the ends."""
        tx = np.interp(s, self.s, self.tangent[:, 0])
        ty = np.interp(s, self.s, self.tangent[:, 1])
        norm = np.maximum(np.hypot(tx, ty), 1e-12)
        tangent = np.column_stack([tx / norm, ty / norm])
        x0 = np.interp(s, self.s, self.xy[:, 0])
        y0 = np.interp(s, self.s, self.xy[:, 1])
        beyond = np.clip(s - self.s[-1], 0, None) + np.clip(s, None, 0)
        base = np.column_stack([x0 + beyond * tangent[:, 0], y0 + beyond * tangent[:, 1]])
        return base, tangent

    def heading_at(self, s: np.ndarray) -> np.ndarray:
        """Unit tangent (n, 2) at arc lengths ``s``."""
        i = np.clip(np.searchsorted(self.s, np.ravel(s)), 0, len(self.s) - 1)
        return self.tangent[i]

    def to_xy(self, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map (s, t) metres back to (x, y)."""
        s = np.ravel(np.asarray(s, dtype=np.float64))
        t = np.ravel(np.asarray(t, dtype=np.float64))
        base, tangent = self._base(s)
        return base[:, 0] - t * tangent[:, 1], base[:, 1] + t * tangent[:, 0]
