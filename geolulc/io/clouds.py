"""Cloud and shadow masks: the L2A scene classification (SCL), and s2cloudless for L1C.

For L1C the s2cloudless detector (its PyPI package ships its LightGBM model, so it works
offline) comes with a cloud-shadow estimate from the sun geometry.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

import numpy as np

log = logging.getLogger(__name__)

#: SCL classes that are not a clear view of the surface: 0 no data, 1 saturated or defective,
#: 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability, 10 thin cirrus.
#: Snow (11), water, vegetation, bare soil, dark area and unclassified are kept as surface.
SCL_MASKED = (0, 1, 3, 8, 9, 10)

#: Bands the s2cloudless model reads, in its order.
S2CLOUDLESS_BANDS = ["B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12"]
#: Bands the L1C cloud and shadow mask reads (B03 tells water from shadow).
L1C_MASK_BANDS = [*S2CLOUDLESS_BANDS, "B03"]
#: s2cloudless was trained at 160 m: the detector runs on 16×16 block means of the 10 m grid.
CLOUD_BLOCK = 16
CLOUD_THRESHOLD = 0.4
SHADOW_HEIGHTS_M = np.arange(500, 4001, 250)


def scl_cloudy(scl: np.ndarray) -> np.ndarray:
    """Pixels whose scene class is masked (a table lookup: the codes are 0…11)."""
    table = np.zeros(max(256, int(scl.max(initial=0)) + 1), dtype=bool)
    table[list(SCL_MASKED)] = True
    return table[scl]


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a mask by `pixels` in every direction (square structuring element)."""
    if pixels <= 0:
        return mask
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        for shift in range(1, pixels + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(lo)] |= out[tuple(hi)]
            grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


_DETECTOR = None


def s2cloudless_probability(means: dict[str, np.ndarray]) -> np.ndarray:
    """Cloud probability of 160 m blocks from their mean L1C DNs (reflectance × 10000)."""
    global _DETECTOR
    from s2cloudless import S2PixelCloudDetector

    if _DETECTOR is None:
        _DETECTOR = S2PixelCloudDetector(threshold=CLOUD_THRESHOLD, average_over=1,
                                         dilation_size=0, all_bands=False)
    stack = np.stack([means[b].astype(np.float32) / 10000 for b in S2CLOUDLESS_BANDS], axis=-1)
    return _DETECTOR.get_cloud_probability_maps(stack[None])[0]


def shadow_from_clouds(cloud: np.ndarray, dark: np.ndarray, sun_azimuth: float,
                       sun_elevation: float, pixel_m: float) -> np.ndarray:
    """Pixels that are dark and lie where a cloud's shadow falls for some cloud height.

    The shadow of a cloud at height h is displaced h / tan(elevation) away from the sun.
    """
    if sun_elevation <= 1:
        return np.zeros_like(cloud)
    shadow = np.zeros_like(cloud)
    away = math.radians(sun_azimuth + 180)
    rows, cols = np.nonzero(cloud)
    for height in SHADOW_HEIGHTS_M:
        d = height / math.tan(math.radians(sun_elevation)) / pixel_m
        r = np.round(rows - d * math.cos(away)).astype(int)  # image rows grow southwards
        c = np.round(cols + d * math.sin(away)).astype(int)
        ok = (r >= 0) & (r < cloud.shape[0]) & (c >= 0) & (c < cloud.shape[1])
        shadow[r[ok], c[ok]] = True
    return shadow & dark & ~cloud


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate solar azimuth and elevation in degrees (NOAA formulas, ±0.5°).

    For scenes whose metadata do not carry them; `when` in UTC.
    """
    day = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    gamma = 2 * math.pi / 365 * (day - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    solar_minutes = hour * 60 + eqtime + 4 * lon
    ha = math.radians(solar_minutes / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    az = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi)
                                 - math.tan(decl) * math.cos(phi))) + 180
    return az % 360, 90 - math.degrees(zen)


def neighbours(mask: np.ndarray) -> np.ndarray:
    """Number of set 8-neighbours of every cell."""
    padded = np.pad(mask.astype(np.int8), 1)
    h, w = mask.shape
    return sum((padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx),
               start=np.zeros((h, w), dtype=np.int8))


def l1c_cloud_blocks(means: dict[str, np.ndarray], sun: tuple[float, float] | None,
                     pixel_m: float) -> np.ndarray:
    """Cloud (s2cloudless) and shadow mask of the 160 m blocks of a whole read grid.

    `means` are the blocks' mean DNs of `L1C_MASK_BANDS` (0 where a block has no data). The
    mask is made once for the whole grid, never chunk by chunk: the neighbour rule, the
    dilation and the shadow search reach several blocks (kilometres) and the darkness threshold
    is a median over the grid, so a mask of a chunk would change with where the chunk ends.

    s2cloudless flags some bright roofs as cloud; such blocks are isolated, so a cloud block
    must have at least two cloudy neighbours (real clouds span several 160 m blocks), and the
    kept clouds grow by one block to cover their edges. Shadows are searched along the sun's
    direction for cloud heights of 0.5–4 km among land blocks (NDWI ≤ 0.2, which leaves open
    water out) darker in the near infrared than half the grid's clear median.
    """
    prob = s2cloudless_probability(means)
    raw = prob >= CLOUD_THRESHOLD
    core = raw & (neighbours(raw) >= 2)
    cloud = dilate(core, 1)
    if sun is not None and core.any():
        nir = means["B08"].astype(np.float32)
        green = means["B03"].astype(np.float32)
        valid = nir > 0
        if (valid & ~cloud).any():
            water = green > 1.5 * nir  # NDWI > 0.2: dark in the near infrared, but no shadow
            dark = valid & ~water & (nir < 0.5 * np.median(nir[valid & ~cloud]))
            shadow = shadow_from_clouds(core, dark, sun[0], sun[1], pixel_m * CLOUD_BLOCK)
            cloud |= dilate(shadow, 1)
    return cloud


def blocks_in_window(blocks: np.ndarray, row_off: int, col_off: int, height: int,
                     width: int) -> np.ndarray:
    """The pixels of a window of the read grid under a mask of its CLOUD_BLOCK blocks."""
    rows = np.arange(row_off, row_off + height) // CLOUD_BLOCK
    cols = np.arange(col_off, col_off + width) // CLOUD_BLOCK
    return blocks[np.ix_(rows, cols)]
