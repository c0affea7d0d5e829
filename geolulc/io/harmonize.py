"""Reflectance harmonisation across Sentinel-2 processing baselines.

From processing baseline 04.00 (25 January 2022) ESA adds +1000 to every digital number so that
dark pixels keep their noise (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` = -1000 in the product
metadata). geolulc brings every scene onto the pre-04.00 scale, reflectance × 10000 with 0 meaning
no data, which is also the scale EuroSAT and the bundled models were trained on. The decision is
taken from the processing baseline of each product, never from provider flags such as
``earthsearch:boa_offset_applied`` or ``raster:bands`` offsets, which differ between catalogues.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from geolulc.errors import AssumptionWarning

OFFSET_BASELINE = (4, 0)
BASELINE_OFFSET_DN = 1000
#: The newest processing baseline known here (05.12, 2026); a later one is taken with the 04.00
#: offset, with a warning: ESA may change the convention again.
NEWEST_KNOWN_BASELINE = (5, 12)
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")


def parse_baseline(text: str | None) -> tuple[int, int] | None:
    """'04.00', '0400', 'N0400' or a product name containing '_N0400_' -> (4, 0)."""
    if not text:
        return None
    text = str(text).strip()
    match = re.fullmatch(r"N?(\d{1,2})\.?(\d{2})", text)
    if match:
        return int(match.group(1)), int(match.group(2))
    match = _BASELINE_IN_NAME.search(text)
    if match:
        return int(match.group(1)), int(match.group(2))
    return None


def baseline_offset(baseline: tuple[int, int] | None) -> int:
    """DN offset to subtract for a product of this baseline (1000 from 04.00 on, else 0).

    An unknown baseline is treated as pre-04.00: products without the field come from archives
    built before the change.
    """
    if baseline is not None and baseline > NEWEST_KNOWN_BASELINE:
        warnings.warn(f"processing baseline {baseline[0]:02d}.{baseline[1]:02d} is newer than "
                      f"any known here ({NEWEST_KNOWN_BASELINE[0]:02d}."
                      f"{NEWEST_KNOWN_BASELINE[1]:02d}): its DN offset is assumed to be "
                      f"{BASELINE_OFFSET_DN}, as from 04.00 on", AssumptionWarning, stacklevel=2)
    if baseline is not None and baseline >= OFFSET_BASELINE:
        return BASELINE_OFFSET_DN
    return 0


def harmonise(dn: np.ndarray, offset: int, nodata: int = 0) -> np.ndarray:
    """Remove the baseline offset in place-safe fashion; keep 0 as no data.

    Valid pixels darker than the offset (negative reflectance after removal) become 1, not 0,
    so that they are not mistaken for no data.
    """
    dn = np.asarray(dn)
    if offset == 0:
        return dn.astype(np.uint16, copy=False)
    valid = dn != nodata
    out = np.zeros(dn.shape, dtype=np.uint16)
    shifted = dn[valid].astype(np.int32) - offset
    out[valid] = np.clip(shifted, 1, 65535).astype(np.uint16)
    return out
