"""A true orthophoto of a simulated scene: vertical rays from above, rendered to an RGB GeoTIFF.

Each pixel casts one ray straight down into the same Embree scene the scanner uses; the first hit
decides the colour, so objects occlude the road under them (a true ortho, no lean). Colour: the
surface's ``rgb`` or its material's colour; road hits show the paint of the
:class:`~data_samples.simulator.scene.PaintPatch` under them, with the same worn spots the scanner
sees (:class:`~data_samples.simulator.scanner.PaintLookup`); Lambert shading from the hit normal
and a sun in the south-east; colour texture noise. Pixels with nothing under them get a soil colour.

The GeoTIFF is in the scene CRS (EPSG:4549 for the project's scenes), 3 bands uint8, tiled
512 x 512, JPEG-in-TIFF (YCbCr, quality 90) by default. It is rendered tile by tile so memory
stays bounded whatever the scene size, written atomically, and deterministic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d

from data_samples.simulator.scanner import (
    MATERIAL_CODES,
    PaintLookup,
    build_raycasting_scene,
    value_noise,
)
from data_samples.simulator.scene import MATERIALS, Scene
from pipeline.errors import OrthoError
from pipeline.files import atomic_path

__all__ = ["OrthoResult", "ortho_bounds", "render_ortho"]

_INVALID_ID = o3d.t.geometry.RaycastingScene.INVALID_ID
_SOIL_RGB = (118, 108, 88)
_SUN = np.array([0.45, -0.45, 0.77])  # from the south-east, about 50° high
_SUN = _SUN / np.linalg.norm(_SUN)
_AMBIENT = 0.55


@dataclass(frozen=True, slots=True)
class OrthoResult:
    """What :func:`render_ortho` wrote: size in pixels, pixel size (m) and the bounds
    (west, south, east, north) in the scene CRS."""

    path: Path
    width: int
    height: int
    pixel_m: float
    bounds: tuple[float, float, float, float]


def ortho_bounds(
    scene: Scene, pixel_m: float = 0.05, margin_m: float = 25.0
) -> tuple[float, float, float, float]:
    """Bounds (west, south, east, north) in the scene CRS: the drive path's extent plus
    ``margin_m``, cut to the surfaces' extent and snapped outwards to the pixel grid.

    >>> from data_samples.simulator.scanner import _scene_stub
    >>> from data_samples.simulator.scene import DrivePath
    >>> path = DrivePath(np.array([[0.0, 0, 0], [10.0, 0, 0]]), np.zeros(2), np.array([0.0, 10.0]))
    >>> ortho_bounds(_scene_stub(path), pixel_m=0.5, margin_m=5.0)
    (-5.0, -5.0, 15.0, 5.0)
    """
    xy = scene.drive_path.xyz[:, :2]
    lo = xy.min(axis=0) - margin_m
    hi = xy.max(axis=0) + margin_m
    if scene.surfaces:
        verts = np.vstack([s.vertices[:, :2] for s in scene.surfaces if len(s.vertices)])
        lo = np.maximum(lo, verts.min(axis=0))
        hi = np.minimum(hi, verts.max(axis=0))
    ox, oy = scene.origin[0], scene.origin[1]
    west = math.floor((ox + lo[0]) / pixel_m) * pixel_m
    south = math.floor((oy + lo[1]) / pixel_m) * pixel_m
    east = math.ceil((ox + hi[0]) / pixel_m) * pixel_m
    north = math.ceil((oy + hi[1]) / pixel_m) * pixel_m
    return (float(west), float(south), float(east), float(north))


def render_ortho(
    scene: Scene,
    out_tif: str | os.PathLike[str],
    pixel_m: float = 0.05,
    seed: int | None = None,
    *,
    margin_m: float = 25.0,
    tile_px: int = 512,
    compress: str = "jpeg",
    jpeg_quality: int = 90,
    progress: Callable[[int, int], None] | None = None,
) -> OrthoResult:
    """Render the scene seen from straight above into an RGB GeoTIFF at ``pixel_m`` metres.

    ``seed`` (default: the scene seed) drives the colour texture; paint wear follows the scene
    seed so it matches the point cloud. ``compress`` is ``"jpeg"`` (YCbCr) or ``"deflate"``.
    ``progress(tiles_done, tiles_total)`` is called after every tile.
    """
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    if pixel_m <= 0:
        raise OrthoError(f"pixel size {pixel_m} m is not positive", path=out_tif)
    if tile_px % 16:
        raise OrthoError(f"tile size {tile_px} px is not a multiple of 16", path=out_tif)
    seed = scene.seed if seed is None else int(seed)
    west, south, east, north = ortho_bounds(scene, pixel_m, margin_m)
    width = max(1, round((east - west) / pixel_m))
    height = max(1, round((north - south) / pixel_m))
    rc, gid_table = build_raycasting_scene(scene)
    top = max(
        (float(s.vertices[:, 2].max()) for s in scene.surfaces if len(s.vertices)), default=0.0
    )
    top += 10.0
    colours = np.array(
        [s.rgb or MATERIALS[s.material].rgb for s in scene.surfaces] + [_SOIL_RGB], dtype=np.float64
    )
    textures = np.array([MATERIALS[s.material].texture for s in scene.surfaces] + [0.15])
    codes = np.array([MATERIAL_CODES[s.material] for s in scene.surfaces] + [len(MATERIAL_CODES)])
    is_road = np.array([s.material == "asphalt" for s in scene.surfaces] + [False])
    paint = PaintLookup(scene.paint, scene.seed)
    paint_rgb = np.array(
        [MATERIALS[p.material].rgb for p in scene.paint] + [(0, 0, 0)], dtype=np.float64
    )
    no_surface = len(scene.surfaces)
    ox, oy = scene.origin[0], scene.origin[1]

    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "crs": scene.crs,
        "transform": Affine(pixel_m, 0.0, west, 0.0, -pixel_m, north),
        "tiled": True,
        "blockxsize": tile_px,
        "blockysize": tile_px,
    }
    if compress == "jpeg":
        profile.update(compress="JPEG", photometric="YCBCR", jpeg_quality=int(jpeg_quality))
    elif compress == "deflate":
        profile.update(compress="DEFLATE", predictor=2)
    else:
        raise OrthoError(f"unknown compression {compress!r} (jpeg or deflate)", path=out_tif)

    tiles = [(r, c) for r in range(0, height, tile_px) for c in range(0, width, tile_px)]
    out_tif = Path(out_tif)
    with atomic_path(out_tif) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for done, (row0, col0) in enumerate(tiles, start=1):
            h = min(tile_px, height - row0)
            w = min(tile_px, width - col0)
            cols = col0 + np.arange(w) + 0.5
            rows = row0 + np.arange(h) + 0.5
            gx, gy = np.meshgrid(west + cols * pixel_m - ox, north - rows * pixel_m - oy)
            n = gx.size
            rays = np.zeros((n, 6), dtype=np.float32)
            rays[:, 0] = gx.ravel()
            rays[:, 1] = gy.ravel()
            rays[:, 2] = top
            rays[:, 5] = -1.0
            hit = rc.cast_rays(o3d.core.Tensor(rays))
            t_hit = hit["t_hit"].numpy().astype(np.float64)
            gids = hit["geometry_ids"].numpy()
            normals = hit["primitive_normals"].numpy().astype(np.float64)
            found = gids != _INVALID_ID
            surf = np.full(n, no_surface, dtype=np.int64)
            surf[found] = gid_table[gids[found]]
            xyz = np.stack([gx.ravel(), gy.ravel(), np.where(found, top - t_hit, 0.0)], axis=1)

            rgb = colours[surf].copy()
            code = codes[surf].copy()
            texture = textures[surf].copy()
            road = np.flatnonzero(is_road[surf])
            if len(road) and paint.patches:
                patch = paint.patch_index(xyz[road, :2])
                painted = road[patch >= 0]
                rgb[painted] = paint_rgb[patch[patch >= 0]]
                texture[painted] = 0.05
                code[painted] = len(MATERIAL_CODES) + 1
            rgb *= _colour_texture(xyz, code, texture, seed)[:, None]
            nz = np.where(normals[:, 2:3] < 0, -normals, normals)
            lambert = np.clip(nz @ _SUN / _SUN[2], 0.0, 1.25)
            shade = np.where(found, _AMBIENT + (1.0 - _AMBIENT) * lambert, 1.0)
            rgb *= shade[:, None]
            img = np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(h, w, 3)
            dst.write(np.moveaxis(img, 2, 0), window=Window(col0, row0, w, h))
            if progress is not None:
                progress(done, len(tiles))
    return OrthoResult(out_tif, width, height, float(pixel_m), (west, south, east, north))


def _colour_texture(
    xyz: np.ndarray, code: np.ndarray, texture: np.ndarray, seed: int
) -> np.ndarray:
    """Brightness texture (mean 1) per pixel: a coarse and a fine layer of value noise."""
    out = np.ones(len(xyz))
    for c in np.unique(code):
        sel = np.flatnonzero(code == c)
        s = seed * 977 + int(c) * 13
        n = (value_noise(xyz[sel, :2], 0.5, s) - 0.5) / 0.2 * 0.6
        n += (value_noise(xyz[sel, :2], 0.06, s + 1) - 0.5) / 0.2 * 0.4
        out[sel] = np.clip(1.0 + 0.6 * texture[sel] * n, 0.5, 1.5)
    return out
