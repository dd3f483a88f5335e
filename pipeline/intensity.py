"""Intensity normalisation for range and incidence angle.

On a flat road both the range falloff and the incidence angle are functions of the distance from
the scanner, so one robust curve does: the median road-surface intensity in quantile bins of range
(from the trajectory position at each point's GPS time) or, without a trajectory, of the absolute
scan angle. Paint covers a small share of the road, so the bin medians follow the asphalt, and
dividing by the curve makes asphalt about 1 everywhere and paint several times more.

>>> r = np.linspace(2, 30, 2000)
>>> raw = 1000.0 * (5.0 / np.maximum(r, 5.0)) ** 1.5
>>> curve = fit_intensity_curve(r, raw)
>>> norm = normalise_intensity(raw, r, curve)
>>> bool(np.all(np.abs(norm - 1.0) < 0.05))
True
>>> fit_intensity_curve(np.empty(0), np.empty(0)).knots.size
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "IntensityCurve",
    "IntensityOptions",
    "fit_intensity_curve",
    "normalise_intensity",
    "scanner_range",
]


@dataclass(frozen=True, slots=True)
class IntensityOptions:
    """``bins``: number of quantile bins of the covariate; ``min_points_per_bin``: bins with
    fewer road points are merged away."""

    bins: int = 60
    min_points_per_bin: int = 50


@dataclass(frozen=True, slots=True, eq=False)
class IntensityCurve:
    """Median asphalt intensity ``values`` at covariate ``knots`` (range metres or degrees)."""

    knots: np.ndarray
    values: np.ndarray

    def __call__(self, covariate: np.ndarray) -> np.ndarray:
        if self.knots.size == 0:
            return np.ones(np.shape(covariate))
        return np.interp(covariate, self.knots, self.values)


def scanner_range(
    xyz: np.ndarray, gps_time: np.ndarray, traj_time: np.ndarray, traj_xyz: np.ndarray
) -> np.ndarray:
    """Distance (metres) from each point to the trajectory position at its GPS time.

    >>> scanner_range(np.array([[3.0, 4.0, 0.0]]), np.array([0.5]),
    ...               np.array([0.0, 1.0]), np.zeros((2, 3))).tolist()
    [5.0]
    """
    pos = np.column_stack([np.interp(gps_time, traj_time, traj_xyz[:, k]) for k in range(3)])
    return np.linalg.norm(xyz - pos, axis=1)


def fit_intensity_curve(
    covariate: np.ndarray, intensity: np.ndarray, options: IntensityOptions | None = None
) -> IntensityCurve:
    """Fit the asphalt intensity against ``covariate`` on road-surface points (robust medians)."""
    options = options or IntensityOptions()
    covariate = np.asarray(covariate, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    if covariate.size < options.min_points_per_bin:
        return IntensityCurve(np.empty(0), np.empty(0))
    nbins = int(max(1, min(options.bins, covariate.size // options.min_points_per_bin)))
    edges = np.unique(np.quantile(covariate, np.linspace(0, 1, nbins + 1)))
    if len(edges) < 2:  # one covariate value: a constant curve
        level = max(float(np.median(intensity)), 1.0)
        return IntensityCurve(np.array([edges[0]]), np.array([level]))
    which = np.clip(np.searchsorted(edges, covariate, side="right") - 1, 0, len(edges) - 2)
    knots, values = [], []
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(len(edges) - 1))
    ends = np.r_[starts[1:], len(order)]
    for a, b in zip(starts, ends, strict=True):
        if b - a < max(5, options.min_points_per_bin // 5):
            continue
        idx = order[a:b]
        knots.append(float(np.median(covariate[idx])))
        values.append(float(np.median(intensity[idx])))
    if not knots:
        return IntensityCurve(np.empty(0), np.empty(0))
    # a bin dominated by paint (a line at a constant range from the scanner) is a spike: a running
    # median over nine bins removes it. Two solid lines at one range either side of the scanner
    # fill three or four quantile bins where points are dense (a short survey or one block)
    vals = np.asarray(values)
    width = 9 if vals.size >= 9 else 5
    if vals.size >= width:
        padded = np.pad(vals, width // 2, mode="edge")
        vals = np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)
    return IntensityCurve(np.asarray(knots), np.maximum(vals, 1.0))


def normalise_intensity(
    intensity: np.ndarray, covariate: np.ndarray, curve: IntensityCurve
) -> np.ndarray:
    """``intensity`` divided by the asphalt curve at ``covariate``: asphalt about 1 (float32)."""
    return (np.asarray(intensity, dtype=np.float64) / curve(covariate)).astype(np.float32)
