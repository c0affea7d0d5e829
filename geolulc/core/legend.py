"""The names and colours of a categorical raster's codes, from which every output takes them.

A map's land cover, a change's from-to codes and its change mask each have one `Legend`; the
GeoTIFF's colour table, GDAL's category names and attribute table, the QGIS style, STAC's
`classification:classes` and the xarray flags are all written from it, so no client shows
other names or colours than another.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Legend:
    """Codes 0…n-1 of a categorical raster: a name and a colour each, and what the band is."""

    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    description: str

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(f"{len(self.names)} names but {len(self.colors)} colours")

    @property
    def titles(self) -> list[str]:
        """Names as people read them: `shrub_and_scrub` → `shrub and scrub`."""
        return [" ".join(name.replace("_", " ").split()) for name in self.names]

    @property
    def identifiers(self) -> list[str]:
        """Names as CF's flag meanings and STAC's class names write them: `water_to_built`.

        ASCII letters, digits and underscores only; case is kept (STAC lowers it).
        """
        found = []
        for name in self.names:
            plain = unicodedata.normalize("NFKD", name.replace("→", " to ")).encode("ascii",
                                                                                    "ignore")
            words = re.split(r"[^0-9A-Za-z]+", plain.decode())
            found.append("_".join(w for w in words if w) or "class")
        return found

    @property
    def hex_colors(self) -> list[str]:
        """Colours as #rrggbb, as QGIS styles and CF attributes write them."""
        return ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in self.colors]

    def cf_flags(self) -> dict[str, str]:
        """CF's flag meanings (names without spaces) and their colours, as xarray attributes.

        rioxarray writes a variable's attributes as GeoTIFF tags and reads tags back as
        attributes, so these carry the legend through `to_raster` and `open_rasterio`.
        """
        return {"flag_meanings": " ".join(self.identifiers),
                "flag_colors": " ".join(self.hex_colors)}

    @classmethod
    def from_cf_flags(cls, attrs: Mapping[str, object], description: str) -> Legend:
        """The legend that `cf_flags` wrote into `attrs` (a variable's attributes, or tags).

        Codes must be 0…n-1 (`flag_values`, where given) and fewer than 255, the no-data code.
        """
        meanings = str(attrs.get("flag_meanings", "")).split()
        colors = str(attrs.get("flag_colors", "")).split()
        if not meanings or len(colors) != len(meanings) or not all(
                re.fullmatch(r"#[0-9a-fA-F]{6}", c) for c in colors):
            raise ValueError("no flag_meanings with as many #rrggbb flag_colors")
        values = attrs.get("flag_values")
        codes = (re.findall(r"-?\d+", values) if isinstance(values, str)
                 else [] if values is None else [str(int(v)) for v in values])  # type: ignore[attr-defined]
        if len(meanings) >= 255 or (values is not None
                                    and codes != [str(i) for i in range(len(meanings))]):
            raise ValueError("flag_values are not the codes 0…n-1 of fewer than 255 classes")
        rgb = tuple((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in colors)
        return cls(tuple(meanings), rgb, description)


def land_cover_legend(classes: list[str], colors: list[RGB]) -> Legend:
    """A model's classes in its colours."""
    return Legend(tuple(classes), tuple(colors), "land cover class")


def fromto_legend(classes: list[str], colors: list[RGB]) -> Legend:
    """Code before × k + after: a change takes the new class's colour, no change a pale one."""
    names, table = [], []
    for a, before in enumerate(classes):
        for b, after in enumerate(classes):
            names.append(f"{before} → {after}")
            r, g, bl = colors[b]
            table.append((r, g, bl) if a != b else
                         ((r + 3 * 255) // 4, (g + 3 * 255) // 4, (bl + 3 * 255) // 4))
    return Legend(tuple(names), tuple(table), "from-to class (before × classes + after)")


#: The change mask: grey where nothing changed, crimson where something did.
CHANGE_LEGEND = Legend(("no change", "change"), ((220, 220, 220), (220, 20, 60)),
                       "change (0 no change, 1 change)")


def probability_names(classes: list[str]) -> list[str]:
    """The name of each band of a probability stack, such as p(water)."""
    return [f"p({name})" for name in classes]
