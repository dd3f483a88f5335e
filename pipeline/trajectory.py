"""Survey trajectories: the vehicle's position (and attitude) over GPS time, as CSV.

The CSV has a header row. Required columns: ``gps_time`` (seconds, the same time base as the
points' ``gps_time``), ``x``, ``y``, ``z`` (metres in the survey CRS). Optional: ``roll_deg``,
``pitch_deg``, ``heading_deg`` (degrees; heading is the travel azimuth clockwise from grid north,
roll positive right side down, pitch positive nose up). Other columns are ignored; names are matched
case-insensitively. This is what the project's simulator writes (:func:`write_trajectory`).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "traj.csv"
>>> traj = Trajectory(np.array([0.0, 1.0]), np.array([[0.0, 0, 0], [3.0, 4.0, 0]]))
>>> write_trajectory(traj, path)
>>> back = read_trajectory(path)
>>> back.length_m, back.duration_s, len(back)
(5.0, 1.0, 2)
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import TrajectoryError
from pipeline.files import atomic_path

__all__ = [
    "ATTITUDE_COLUMNS",
    "REQUIRED_COLUMNS",
    "Trajectory",
    "read_trajectory",
    "write_trajectory",
]

REQUIRED_COLUMNS = ("gps_time", "x", "y", "z")
ATTITUDE_COLUMNS = ("roll_deg", "pitch_deg", "heading_deg")


@dataclass(frozen=True, slots=True, eq=False)
class Trajectory:
    """Vehicle poses over time: ``gps_time`` (n,) seconds strictly increasing, ``xyz`` (n, 3)
    metres in the survey CRS, and optional ``roll_deg``/``pitch_deg``/``heading_deg`` (n,) degrees.
    """

    gps_time: np.ndarray
    xyz: np.ndarray
    roll_deg: np.ndarray | None = None
    pitch_deg: np.ndarray | None = None
    heading_deg: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.gps_time.shape[0]
        if self.gps_time.ndim != 1 or self.xyz.shape != (n, 3):
            raise ValueError(
                f"gps_time must be (n,) and xyz (n, 3); got {self.gps_time.shape}, {self.xyz.shape}"
            )
        for name in ATTITUDE_COLUMNS:
            values = getattr(self, name)
            if values is not None and values.shape != (n,):
                raise ValueError(f"{name} must be ({n},), got {values.shape}")

    def __len__(self) -> int:
        return int(self.gps_time.shape[0])

    @property
    def length_m(self) -> float:
        """3D path length in metres (sum of the straight segments between poses)."""
        if len(self) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.xyz, axis=0), axis=1).sum())

    @property
    def duration_s(self) -> float:
        """Seconds from the first pose to the last (0 for fewer than two poses)."""
        return float(self.gps_time[-1] - self.gps_time[0]) if len(self) else 0.0

    @property
    def has_attitude(self) -> bool:
        """True when roll, pitch and heading are all present."""
        return all(getattr(self, name) is not None for name in ATTITUDE_COLUMNS)


def read_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read a trajectory CSV (see the module docstring for the columns).

    Raises :class:`~pipeline.errors.TrajectoryError` naming the file when it is missing, empty,
    lacks required columns, holds a non-numeric, NaN or infinite value (with its line number) or
    its times are not strictly increasing.

    >>> read_trajectory("no/such.csv")
    Traceback (most recent call last):
    ...
    pipeline.errors.TrajectoryError: no/such.csv: no such file
    """
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError("no such file" if not path.exists() else "not a file", path=path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header is None or not any(cell.strip() for cell in header):
                raise TrajectoryError("file is empty (expected a header row)", path=path)
            names = [cell.strip().lower() for cell in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in names]
            if missing:
                raise TrajectoryError(
                    f"missing column(s) {', '.join(missing)} (header has: {', '.join(names)};"
                    f" required: {', '.join(REQUIRED_COLUMNS)})",
                    path=path,
                )
            wanted = [c for c in (*REQUIRED_COLUMNS, *ATTITUDE_COLUMNS) if c in names]
            index = [names.index(c) for c in wanted]
            values: list[list[float]] = []
            lines: list[int] = []
            for row in rows:
                line = rows.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if len(row) < len(names):
                    raise TrajectoryError(
                        f"line {line}: {len(row)} fields, the header has {len(names)}", path=path
                    )
                parsed = []
                for column, i in zip(wanted, index, strict=True):
                    parsed.append(_number(row[i], column, line, path))
                values.append(parsed)
                lines.append(line)
    except UnicodeDecodeError:
        raise TrajectoryError("not a UTF-8 text CSV file", path=path) from None
    except csv.Error as exc:
        raise TrajectoryError(f"malformed CSV ({exc})", path=path) from None
    if not values:
        raise TrajectoryError("holds a header but no rows", path=path)
    table = np.array(values, dtype=np.float64)
    times = table[:, 0]
    steps = np.diff(times)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise TrajectoryError(
            f"line {lines[bad]}: gps_time not strictly increasing ({times[bad - 1]!r} then"
            f" {times[bad]!r})",
            path=path,
        )
    columns = {name: table[:, k] for k, name in enumerate(wanted)}
    return Trajectory(
        gps_time=times,
        xyz=table[:, 1:4].copy(),
        roll_deg=columns.get("roll_deg"),
        pitch_deg=columns.get("pitch_deg"),
        heading_deg=columns.get("heading_deg"),
    )


def write_trajectory(traj: Trajectory, path: str | os.PathLike[str]) -> None:
    """Write ``traj`` as CSV (atomically), with the attitude columns it carries.

    Values are written with full float precision, so reading gives back the same numbers.
    """
    columns = [*REQUIRED_COLUMNS] + [c for c in ATTITUDE_COLUMNS if getattr(traj, c) is not None]
    data = [traj.gps_time, traj.xyz[:, 0], traj.xyz[:, 1], traj.xyz[:, 2]]
    data += [getattr(traj, c) for c in ATTITUDE_COLUMNS if getattr(traj, c) is not None]
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write(",".join(columns) + "\n")
        for row in zip(*(np.asarray(d, dtype=np.float64).tolist() for d in data), strict=True):
            f.write(",".join(repr(v) for v in row) + "\n")


def _number(text: str, column: str, line: int, path: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TrajectoryError(
            f"line {line}: column {column} is not a number: {text.strip()!r}", path=path
        ) from None
    if not math.isfinite(value):
        raise TrajectoryError(f"line {line}: column {column} is {text.strip()}", path=path)
    return value
