"""Saving an AOI's harmonised, mosaicked band stack locally, as per-band GeoTIFFs plus a STAC item.

Later runs read it with `geolulc map --scene FOLDER` and need no network. Pixels are stored with
the baseline offset already removed (item property ``geolulc:harmonised``), and pixels masked as
cloud, shadow or defect are stored as no data (0).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from shapely.geometry import mapping

from geolulc._version import __version__
from geolulc.core.grid import choose_crs, grid_for_bounds, project_geometry
from geolulc.errors import NoDataError
from geolulc.io.aoi import DEFAULT_MAX_AREA_KM2, AOILike, load_aoi
from geolulc.io.atomic import staged_outputs, write_text_atomic
from geolulc.io.bands import ALL_BANDS, COMMON_NAMES, normalise_band
from geolulc.io.catalog import DEFAULT_COLLECTION, EARTH_SEARCH, search_scenes, select_covering
from geolulc.io.gdal import gdal_env
from geolulc.io.read import StackReader

CHUNK_ROWS = 1024


def download_stack(
    aoi_path: AOILike, date: str, out_dir: Path, catalog: str = EARTH_SEARCH,
    collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2, bands: list[str] | None = None,
    crs: str | None = None, resolution: float = 10.0,
) -> Path:
    """Save the AOI's band stack for `date` in `out_dir` (see the module); returns its item.json.

    The stack covers the cells a stride-64 map of the AOI has, plus a 32-pixel border (the
    margin overlapping patches read beyond the cells), so a later `map --scene` of that folder
    needs no network.
    """
    aoi = load_aoi(aoi_path, max_area_km2)
    found = search_scenes(aoi.geometry, date, catalog, collection, max_cloud)
    scenes = select_covering(found, aoi.geometry)
    if not scenes:
        raise NoDataError(f"no {collection} scene in {catalog} covers the AOI in {date}")
    common = [b for b in ALL_BANDS if all(b in s.bands for s in scenes)]
    wanted = [normalise_band(b) for b in bands] if bands else common
    target_crs = choose_crs(aoi.geometry, crs)
    # The stack covers the 640 m cells a stride-64 map of the AOI has, plus a 32-pixel border:
    # the margin that overlapping patches (any --stride) read beyond the cells. Expressed as a
    # grid of 128-pixel patches every 64 pixels, whose read margin is exactly 32 pixels.
    grid = grid_for_bounds(project_geometry(aoi.geometry, target_crs).bounds, target_crs,
                           resolution, 128, 64)
    height, width = grid.read_shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1,
               "dtype": "uint16", "crs": grid.crs.to_wkt(), "transform": grid.read_transform,
               "nodata": 0, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "DEFLATE", "predictor": 2, "BIGTIFF": "IF_SAFER"}
    with_aot = all(s.aot for s in scenes)  # kept, so an offline map restores L2A identically
    with staged_outputs(out_dir, last="item.json") as stage, \
            StackReader(scenes, wanted, grid) as reader, contextlib.ExitStack() as stack:
        stack.enter_context(gdal_env())
        outputs = [rasterio.open(stage / f"{band}.tif", "w", **profile) for band in wanted]
        aot_vrts = [stack.enter_context(WarpedVRT(stack.enter_context(rasterio.open(s.aot)),
                                                  crs=grid.crs.to_wkt(), width=width,
                                                  height=height, transform=grid.read_transform,
                                                  nodata=0, resampling=Resampling.bilinear))
                    for s in scenes] if with_aot else []
        if with_aot:
            outputs.append(rasterio.open(stage / "AOT.tif", "w", **profile))
        try:
            for row0 in range(0, height, CHUNK_ROWS):
                window = Window(0, row0, width, min(CHUNK_ROWS, height - row0))
                planes = list(reader.read(window).dn)
                if with_aot:
                    aot = np.zeros(planes[0].shape, dtype=np.uint16)
                    for vrt in aot_vrts:  # first scene that has a value, as the mosaic does
                        part = vrt.read(1, window=window)
                        aot = np.where(aot == 0, part, aot)
                    planes.append(aot)
                for dst, plane in zip(outputs, planes):
                    dst.write(plane, 1, window=window)
        finally:
            for dst in outputs:
                dst.close()
        first = scenes[0]
        item = {
            "type": "Feature", "stac_version": "1.0.0",
            "id": f"{aoi.name}_{date}".replace("/", "_"),
            "geometry": mapping(aoi.geometry), "bbox": list(aoi.geometry.bounds),
            "properties": {
                "datetime": first.datetime.isoformat() if first.datetime else None,
                "s2:product_type": "S2MSI2A" if first.level == "L2A" else "S2MSI1C",
                "s2:processing_baseline": first.baseline_text,
                "eo:cloud_cover": first.cloud_cover,
                "proj:code": grid.crs.to_string(),
                "geolulc:harmonised": True,
                **{k: first.properties[k] for k in ("view:sun_azimuth", "view:sun_elevation")
                   if k in first.properties},
                "geolulc:sources": [s.id for s in scenes],
                "geolulc:version": __version__,
            },
            "links": [],
            "assets": {COMMON_NAMES[b]: {"href": f"{b}.tif", "type":
                                         "image/tiff; application=geotiff",
                                         "eo:bands": [{"name": b}], "roles": ["data"]}
                       for b in wanted},
        }
        if with_aot:
            item["assets"]["aot"] = {"href": "AOT.tif", "type": "image/tiff; application=geotiff",
                                     "roles": ["data"], "description": "AOT at 550 nm × 1000"}
        write_text_atomic(stage / "item.json", json.dumps(item, indent=2) + "\n")
    return Path(out_dir) / "item.json"
