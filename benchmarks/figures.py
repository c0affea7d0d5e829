"""README figures: a scene in true colour beside its land-cover quicklook, on the same grid.

    python benchmarks/figures.py SCENE LANDCOVER.tif OUT.png QUICKLOOK.png [QUICKLOOK.png ...]

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

from geolulc.core.grid import PatchGrid
from geolulc.io.quicklook import render_true_colour
from geolulc.io.read import Masking, StackReader
from geolulc.io.scenes import load_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("landcover", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("quicklooks", type=Path, nargs="+")
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
    quicklooks = [Image.open(q) for q in args.quicklooks]
    colour = render_true_colour(pixels.dn, size=512)
    width = colour.width + sum(q.width for q in quicklooks) + 10 * (len(quicklooks) + 2)
    height = max(colour.height + 28, *(q.height for q in quicklooks))
    canvas = Image.new("RGB", (width, height), (245, 245, 245))
    canvas.paste(colour, (10, 28))
    ImageDraw.Draw(canvas).text((10, 5), args.title or "true colour (B04 B03 B02)",
                                fill=(0, 0, 0))
    x = colour.width + 20
    for q in quicklooks:
        canvas.paste(q, (x, 0))
        x += q.width + 10
    canvas.save(args.out)


if __name__ == "__main__":
    main()
