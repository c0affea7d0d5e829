"""The EuroSAT land-cover classes and the colours geolulc draws them in."""

EUROSAT_CLASSES = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
]

#: RGB colours, chosen to read like a conventional land-cover legend.
EUROSAT_COLORS = {
    "AnnualCrop": (240, 228, 66),
    "Forest": (0, 100, 0),
    "HerbaceousVegetation": (144, 238, 144),
    "Highway": (128, 128, 128),
    "Industrial": (170, 40, 170),
    "Pasture": (190, 160, 60),
    "PermanentCrop": (230, 130, 20),
    "Residential": (220, 20, 60),
    "River": (70, 130, 230),
    "SeaLake": (0, 40, 140),
}

#: Colour for classes without a predefined one (user-trained models).
FALLBACK_COLORS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]


def colors_for(classes: list[str]) -> list[tuple[int, int, int]]:
    """Legend colours for `classes`: EuroSAT's own, a fallback palette for other classes."""
    return [
        EUROSAT_COLORS.get(name, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        for i, name in enumerate(classes)
    ]


#: Classes that mean open water, in every bundled legend.
WATER_CLASSES = ("water", "River", "SeaLake")
