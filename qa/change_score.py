"""Scoring detected map changes against known, injected ones (issue 7).

A predicted record (a :class:`~tiles.changes.ChangeRecord` or its ``to_dict()`` form) matches a
truth record (the simulator's ``changes.json`` schema: ``change``, ``layer``, ``anchor`` = [x, y, z]
in the maps' CRS, metres) when both name the same layer and change type and their anchors lie
within ``distance_m`` of each other (2D). Matching is one to one, by the Hungarian method per
(layer, change type) (:func:`qa.score.match_points`). Precision, recall and F1 follow
:mod:`qa.score`: a ratio with a zero denominator is ``None``; F1 is 0 when one side is 0 and the
other undefined, ``None`` when both are undefined.

>>> truth = [{"change": "deleted", "layer": "poles", "anchor": [10.0, 0.0, 0.0]}]
>>> s = score_changes([{"change": "deleted", "layer": "poles", "anchor": [10.5, 0, 0]}], truth)
>>> s.precision, s.recall, s.matched
(1.0, 1.0, 1)
>>> score_changes([], [])
ChangeScore(precision=None, recall=None, f1=None, matched=0, false_positives=0, false_negatives=0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qa.score import match_points

__all__ = ["DEFAULT_DISTANCE_M", "ChangeScore", "score_changes", "score_rows"]

#: anchor distance within which a predicted change matches a true one, metres. A change of a long
#: line is anchored at the middle of the changed stretch, which two extractions place a metre or
#: two apart.
DEFAULT_DISTANCE_M = 5.0


@dataclass(frozen=True, slots=True)
class ChangeScore:
    """Precision, recall and F1 of predicted change records, with the counts behind them."""

    precision: float | None
    recall: float | None
    f1: float | None
    matched: int
    false_positives: int
    false_negatives: int


def _get(record: Any) -> tuple[str, str, tuple[float, float]]:
    data = record if isinstance(record, Mapping) else record.to_dict()
    x, y = (float(v) for v in list(data["anchor"])[:2])
    return str(data["change"]), str(data["layer"]), (x, y)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return 0.0 if (p, r) in ((0.0, None), (None, 0.0)) else None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _score(pred: list, truth: list, distance_m: float) -> ChangeScore:
    matched = 0
    for key in sorted({k[:2] for k in pred} | {k[:2] for k in truth}):
        p = np.array([k[2] for k in pred if k[:2] == key], dtype=float).reshape(-1, 2)
        t = np.array([k[2] for k in truth if k[:2] == key], dtype=float).reshape(-1, 2)
        matched += len(match_points(t, p, distance_m))
    precision, recall = _ratio(matched, len(pred)), _ratio(matched, len(truth))
    return ChangeScore(
        precision,
        recall,
        _f1(precision, recall),
        matched,
        len(pred) - matched,
        len(truth) - matched,
    )


def _select(records: Iterable[Any], layers: Sequence[str] | None) -> list:
    out = [_get(r) for r in records]
    return out if layers is None else [r for r in out if r[1] in layers]


def score_changes(
    records: Iterable[Any],
    truth: Sequence[Mapping[str, Any]],
    *,
    distance_m: float = DEFAULT_DISTANCE_M,
    layers: Sequence[str] | None = None,
) -> ChangeScore:
    """Score predicted change ``records`` against ``truth`` (see the module docstring).

    ``layers`` restricts both sides to some layers (to score only what an extraction produces).

    >>> truth = [{"change": "inserted", "layer": "signs", "anchor": [0.0, 0.0, 3.0]}]
    >>> score_changes([{"change": "deleted", "layer": "signs", "anchor": [0, 0, 3]}], truth)
    ChangeScore(precision=0.0, recall=0.0, f1=0.0, matched=0, false_positives=1, false_negatives=1)
    """
    if not distance_m > 0:
        raise ValueError("distance_m must be positive")
    return _score(_select(records, layers), _select(truth, layers), float(distance_m))


def score_rows(
    records: Iterable[Any],
    truth: Sequence[Mapping[str, Any]],
    *,
    distance_m: float = DEFAULT_DISTANCE_M,
) -> dict[tuple[str, str], ChangeScore]:
    """The score of every (change type, layer) found on either side.

    >>> truth = [{"change": "deleted", "layer": "poles", "anchor": [0.0, 0.0, 0.0]}]
    >>> score_rows([], truth)[("deleted", "poles")].false_negatives
    1
    """
    pred, true = _select(records, None), _select(truth, None)
    keys = sorted({k[:2] for k in pred} | {k[:2] for k in true})
    return {
        key: _score(
            [k for k in pred if k[:2] == key], [k for k in true if k[:2] == key], float(distance_m)
        )
        for key in keys
    }
