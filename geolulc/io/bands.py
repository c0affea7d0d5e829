"""Sentinel-2 MSI band catalogue and the asset names different STAC providers give each band."""

from __future__ import annotations

#: Native ground sampling distance in metres of each MSI band, in the EuroSAT MS order
#: (B01…B12, then B8A), which is also the order geolulc uses for 13-band stacks.
BAND_RESOLUTION: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "B8A": 20,
}
ALL_BANDS: tuple[str, ...] = tuple(BAND_RESOLUTION)

#: STAC common names (Earth Search v1 uses them as asset keys).
COMMON_NAMES: dict[str, str] = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B09": "nir09", "B10": "cirrus",
    "B11": "swir16", "B12": "swir22", "B8A": "nir08",
}

#: Bands that are absent from L2A products (B10 is dropped by Sen2Cor).
L2A_MISSING = ("B10",)


def normalise_band(name: str) -> str:
    """Map 'b2', 'B2', 'blue', 'B02' to the canonical 'B02'; raise ValueError otherwise."""
    key = name.strip()
    for band, common in COMMON_NAMES.items():
        if key.lower() == common:
            return band
    upper = key.upper()
    if upper in BAND_RESOLUTION:
        return upper
    if upper.startswith("B") and upper[1:].isdigit():
        padded = f"B{int(upper[1:]):02d}"
        if padded in BAND_RESOLUTION:
            return padded
    raise ValueError(f"unknown Sentinel-2 band {name!r}")


def asset_key_candidates(band: str) -> list[str]:
    """Asset keys under which providers publish `band`, most specific first.

    Earth Search v1 uses common names ('red'), Planetary Computer band names ('B04') and the
    Copernicus Data Space band names with a resolution suffix ('B04_10m', then coarser copies).
    """
    native = BAND_RESOLUTION[band]
    suffixes = [r for r in (10, 20, 60) if r >= native]
    return [COMMON_NAMES[band], band, *(f"{band}_{r}m" for r in suffixes)]


SCL_KEYS = ["scl", "SCL", "SCL_20m", "SCL_60m"]

#: Asset keys of the L2A aerosol optical thickness layer (AOT at 550 nm × 1000).
AOT_KEYS = ["aot", "AOT", "AOT_10m", "AOT_20m", "AOT_60m"]
