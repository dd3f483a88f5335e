"""Tile benchmark: encode and hash the truth map of a simulated highway survey as level-13 tiles.

    >>> from tests.bench.tiles_bench import measure_tiles
    >>> measure_tiles(5000.0)  # doctest: +SKIP
    {'length_m': 5000.0, 'features': 299, 'tiles': 3, 'seconds': 0.5, ...}

``seconds`` times :func:`tiles.encode.encode_tiles` (anchors and vertices to WGS84, crossing tests,
XML, gzip and SHA-256 of every tile); ``decode_seconds`` times :func:`tiles.encode.assemble` of
all of them back into one map.
"""

from __future__ import annotations

import time

__all__ = ["measure_tiles"]


def measure_tiles(length_m: float = 5000.0, seed: int = 1, level: int = 13) -> dict:
    """Build the ``highway`` scene of ``length_m`` metres and time tiling its truth map."""
    from data_samples.simulator.scenes import build_scene
    from tiles.encode import assemble, encode_tiles

    truth = build_scene("highway", seed, length_m=length_m).truth
    start = time.perf_counter()
    tiles = encode_tiles(truth, level=level)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    back = assemble(t.data for t in tiles.values())
    decode_seconds = time.perf_counter() - start
    return {
        "length_m": float(length_m),
        "seed": seed,
        "level": level,
        "features": sum(truth.counts().values()),
        "tiles": len(tiles),
        "crossing_refs": sum(t.crossing for t in tiles.values()),
        "gzip_bytes": sum(len(t.data) for t in tiles.values()),
        "seconds": seconds,
        "decode_seconds": decode_seconds,
        "round_trip": sorted(f.id for f in back.features())
        == sorted(f.id for f in truth.features()),
    }
