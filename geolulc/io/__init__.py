"""Everything that touches files and services.

Areas of interest, the STAC catalogue, scenes and their bands, reflectance harmonisation and the
atmosphere, cloud masks, reading onto a grid, and writing rasters, statistics and quicklooks.
"""
