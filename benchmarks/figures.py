"""README figures: a scene in true colour beside its land-cover quicklook, on the same grid.

    python benchmarks/figures.py SCENE LANDCOVER.tif QUICKLOOK.png OUT.png [--l2a-toa]

SCENE is what `geolulc map --scene` takes; the true colour is read on the map's grid, so both
panels show exactly the same ground.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rasterio
from PIL import Image, ImageDraw
from pyproj import CRS
from rasterio.windows import Window

from geolulc.grid import PatchGrid
from geolulc.quicklook import render_true_colour
from geolulc.read import Masking, StackReader
from geolulc.scenes import load_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("landcover", type=Path)
    ap.add_argument("quicklook", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--resolution", type=float, default=10.0)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    with rasterio.open(args.landcover) as src:
        t, shape, crs = src.transform, src.shape, CRS.from_user_input(src.crs)
    factor = round(t.a / args.resolution)
    grid = PatchGrid(crs, args.resolution, t.c, t.f, shape[0] * factor, shape[1] * factor, 1, 1)
    with StackReader([load_scene(args.scene)], ["B04", "B03", "B02"], grid,
                     Masking(detect_l1c=False)) as reader:
        pixels = reader.read(Window(0, 0, grid.cols, grid.rows))
    quicklook = Image.open(args.quicklook)
    colour = render_true_colour(pixels.dn, size=512)
    canvas = Image.new("RGB", (colour.width + quicklook.width + 30, max(colour.height + 28,
                                                                       quicklook.height)),
                       (245, 245, 245))
    canvas.paste(colour, (10, 28))
    ImageDraw.Draw(canvas).text((10, 5), args.title or "true colour (B04 B03 B02)",
                                fill=(0, 0, 0))
    canvas.paste(quicklook, (colour.width + 20, 0))
    canvas.save(args.out)


if __name__ == "__main__":
    main()
