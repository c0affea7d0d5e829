"""Array work in blocks of rows small enough for the CPU cache.

Whole-array numpy expressions on a chunk of a tile (10⁷ pixels) stream every temporary through
main memory; the same expression over blocks of about 64 k pixels keeps them in the cache and
runs several times faster (14× for the L2A atmosphere restoration).
"""

from __future__ import annotations


def row_blocks(shape: tuple[int, ...], pixels: int = 1 << 16) -> list[slice]:
    """Slices of rows of about `pixels` pixels: blocks whose temporaries fit in the cache."""
    step = max(1, pixels // max(shape[-1], 1))
    return [slice(r, r + step) for r in range(0, shape[0], step)]
