"""Per-pixel models over large areas: tiles with a halo of context, batched.

A segmenter (Dynamic World) labels every 10 m pixel. A chunk of the read grid is cut into square
tiles of `TILE` pixels, each read with `HALO` extra pixels of context on every side; the network
runs on batches of tiles and only each tile's core is kept. The Dynamic World network sees about
±24 pixels (a 3×3 stem, an antialiased halving, nine 3×3 depthwise convolutions at 20 m and a
bilinear upsampling), so a halo of 32 reproduces a forward pass over the whole scene: no seams
(`benchmarks/bench_tiling.py` measures the agreement and the cost of the halo).
"""

from __future__ import annotations

import numpy as np

#: Core size of a tile in pixels; even, so the network's 2× downsampling keeps its phase.
TILE = 512
#: Context read around each tile's core, in pixels (even, for the same reason).
HALO = 32


def tile_origins(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    """Top-left corners (in core coordinates) of the tiles covering height × width."""
    return [(r, c) for r in range(0, height, tile) for c in range(0, width, tile)]


def segment(dn: np.ndarray, probabilities, n_classes: int, tile: int = TILE,
            halo: int = HALO) -> np.ndarray:
    """Per-pixel class probabilities (h, w, K) float32 of the core of `dn` (bands, h + 2 halo,
    w + 2 halo), computed tile by tile.

    `probabilities` maps a batch of DN tiles (N, bands, t, t) to (N, K, t, t). The area is padded
    on the bottom/right by repeating its last pixels, so every tile has the same shape and tiles
    batch together; the padding lies outside the core and is cut away.
    """
    bands, full_h, full_w = dn.shape
    height, width = full_h - 2 * halo, full_w - 2 * halo
    pad_h = -height % tile
    pad_w = -width % tile
    if pad_h or pad_w:
        dn = np.pad(dn, ((0, 0), (0, pad_h), (0, pad_w)), mode="edge")
    size = tile + 2 * halo
    origins = tile_origins(height, width, tile)
    tiles = np.stack([dn[:, r:r + size, c:c + size] for r, c in origins])
    probs = probabilities(tiles)  # (N, K, size, size)
    out = np.empty((height + pad_h, width + pad_w, n_classes), dtype=np.float32)
    for (r, c), p in zip(origins, probs):
        out[r:r + tile, c:c + tile] = np.moveaxis(p[:, halo:halo + tile, halo:halo + tile], 0, -1)
    return out[:height, :width]

