"""Per-pixel models over large areas: tiles with a halo of context, batched.

A segmenter (Dynamic World) labels every 10 m pixel. A chunk of the read grid is cut into tiles
of about `TILE` pixels (all of one shape, so the network is compiled once), each read with `HALO`
extra pixels of context on every side; the network runs tile by tile and only each tile's core
is kept. Tile sides and origins are even, so the network's 2× downsampling keeps its phase. The
Dynamic World network sees about ±24 pixels (a 3×3 stem, an antialiased halving, nine 3×3
depthwise convolutions at 20 m and a bilinear upsampling), so a halo of 32 reproduces a forward
pass over the whole scene: no seams (`benchmarks/bench_tiling.py` measures the agreement and the
cost of the halo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: Core size (rows, columns) a tile aims at, in pixels. The halo costs (564 × 1064) / (500 ×
#: 1000) = 1.20× (1.27× for 512², 1.13× for 1000²), and OpenVINO needs about 0.8 GB for such a
#: tile of Dynamic World (1.4 GB for 1000²), which keeps a whole 10 m tile under 3 GB.
TILE = (512, 1024)
#: Context read around each tile's core, in pixels (even).
HALO = 32


def tile_size(extent: int, target: int) -> int:
    """The even tile length closest above `extent / n` for the fewest tiles n of at most `target`.

    10980 pixels take 11 tiles of 1000, not 11 of 1024 (2.6 % padding).
    """
    n = -(-extent // target)
    size = -(-extent // n)
    return size + size % 2


def tile_origins(height: int, width: int, tile: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners (in core coordinates) of the tiles covering height × width."""
    return [(r, c) for r in range(0, height, tile[0]) for c in range(0, width, tile[1])]


def tile_probabilities(dn: np.ndarray, probabilities: Callable[[np.ndarray], np.ndarray],
                       tile: int | tuple[int, int] | None = None, halo: int = HALO, batch: int = 1,
                       needed: Callable[[int, int], bool] | None = None,
                       ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Per-pixel class probabilities of the core of `dn` (bands, h + 2 halo, w + 2 halo), tile by tile.

    Yields (row, col, (K, tile rows, tile cols) float32) of each tile's core, `batch` tiles per
    call of `probabilities` (DN tiles (N, bands, t, t) -> (N, K, t, t)). Only a batch of tiles
    is in memory at a time; tiles for which `needed(row, col)` is false are skipped.

    Tiles that run off the bottom/right are padded by repeating the area's last pixels, so every
    tile has the same shape (one compiled network); the padding lies outside the core and is cut
    away. The default tile covers the height in one row of tiles and splits the width evenly into
    tiles of at most `TILE[1]` columns.
    """
    bands, full_h, full_w = dn.shape
    height, width = full_h - 2 * halo, full_w - 2 * halo
    if tile is None:
        tile = (height + height % 2, tile_size(width, TILE[1]))
    elif isinstance(tile, int):
        tile = (tile, tile)
    size = (tile[0] + 2 * halo, tile[1] + 2 * halo)

    def cut(r: int, c: int) -> np.ndarray:
        part = dn[:, r:r + size[0], c:c + size[1]]
        pad = ((0, 0), (0, size[0] - part.shape[1]), (0, size[1] - part.shape[2]))
        return np.pad(part, pad, mode="edge") if pad[1][1] or pad[2][1] else part

    origins = [o for o in tile_origins(height, width, tile) if needed is None or needed(*o)]
    for i in range(0, len(origins), batch):
        group = origins[i:i + batch]
        probs = probabilities(np.stack([cut(r, c) for r, c in group]))
        for (r, c), p in zip(group, probs):
            core = p[:, halo:halo + tile[0], halo:halo + tile[1]]
            yield r, c, core[:, :height - r, :width - c]


def segment(dn: np.ndarray, probabilities: Callable[[np.ndarray], np.ndarray], n_classes: int,
            tile: int | tuple[int, int] | None = None, halo: int = HALO) -> np.ndarray:
    """Per-pixel class probabilities (h, w, K) float32 of the core of `dn`, computed tile by tile.

    `dn` is (bands, h + 2 halo, w + 2 halo); the tiles are those of `tile_probabilities`.
    """
    height, width = dn.shape[1] - 2 * halo, dn.shape[2] - 2 * halo
    out = np.empty((height, width, n_classes), dtype=np.float32)
    for r, c, p in tile_probabilities(dn, probabilities, tile, halo):
        out[r:r + p.shape[1], c:c + p.shape[2]] = np.moveaxis(p, 0, -1)
    return out
