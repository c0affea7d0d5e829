"""Writing rasters as Cloud-Optimized GeoTIFFs that GIS software reads as intended."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import CRS
from rasterio._err import CPLE_BaseError  # what GDAL's write errors surface as
from rasterio.dtypes import _gdal_typename
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from geolulc.core.legend import Legend
from geolulc.errors import DataError
from geolulc.io.atomic import atomic_path, write_text_atomic

#: Free bytes under which a failed write is reported as a full disk.
FULL_DISK_BYTES = 16 * 2**20
#: No-data code of every uint8 raster geolulc writes (land cover, confidence, probabilities).
NODATA = 255
#: Probabilities are stored as uint8: value = round(probability × PROB_SCALE).
PROB_SCALE = 250
#: File-name endings of a map's outputs, read back by `change` (NAME + suffix).
LANDCOVER_SUFFIX = "_landcover.tif"
PROBABILITIES_SUFFIX = "_probabilities.tif"


def write_cog(
    path: str | Path, array: np.ndarray, crs: CRS, transform: Affine, nodata: float | None,
    colormap: Mapping[int, tuple[int, ...]] | None = None, tags: dict | None = None,
    description: str | list[str] | None = None, resampling: str = "NEAREST",
    scale: float | None = None, nodata_where: np.ndarray | None = None,
    unit: str | None = None,
) -> Path:
    """Write a (height, width) or (bands, height, width) array as a COG, atomically.

    The COG is tiled, deflate-compressed (on every core) and has internal overviews.

    `resampling` is the overview resampling: NEAREST for categories, AVERAGE for quantities;
    quantities are stored with horizontal differencing (predictor 2) at deflate level 1, which
    on a tile's probabilities is 2× faster than level 6 without it and 11 % smaller.
    `description` names the band, or each band when given as a list; `scale` is written as
    GDAL's band scale, so GIS software shows physical values, and `unit` as every band's unit
    type. `nodata_where` marks pixels written as `nodata` in every band.

    GDAL makes a COG only by copying a finished raster, and rasterio's writer would first
    copy the array into one (a whole tile's probabilities: 1.1 GB more). Here GDAL reads
    `array` where it lies (`_in_place`); `nodata_where` is applied to it for the copy and the
    values under it are put back afterwards, so the array is unchanged when this returns.
    """
    path = Path(path)
    stack = array[None] if array.ndim == 2 else array
    if (not stack.dtype.isnative or stack.dtype.kind == "b" or stack.dtype.itemsize < 2
            and stack.dtype.kind == "f") or (nodata_where is not None
                                            and not stack.flags.writeable):
        # GDAL reads native byte order and has no bool or float16; a read-only array cannot
        # take `nodata_where`: a copy in a type GDAL has
        wanted: np.dtype = stack.dtype.newbyteorder("=")
        if stack.dtype.kind == "b":
            wanted = np.dtype(np.uint8)
        elif stack.dtype.kind == "f" and stack.dtype.itemsize < 4:
            wanted = np.dtype(np.float32)
        stack = stack.astype(wanted)
    if nodata_where is not None and nodata is None:
        raise ValueError("nodata_where needs a nodata value to write")
    options = {"compress": "DEFLATE", "blocksize": 256, "overview_resampling": resampling,
               "BIGTIFF": "IF_SAFER", "num_threads": "ALL_CPUS"}
    if resampling != "NEAREST":
        options.update(predictor=2, level=1)
    with atomic_path(path) as tmp:
        hidden = stack[:, nodata_where] if nodata_where is not None else None
        try:
            if hidden is not None:
                stack[:, nodata_where] = nodata
            with _in_place(stack) as src:
                src.crs, src.transform = crs, transform
                if nodata is not None:
                    src.nodata = nodata
                if colormap:
                    src.write_colormap(1, colormap)
                if tags:
                    src.update_tags(**{k: v if isinstance(v, str) else json.dumps(v)
                                       for k, v in tags.items()})
                if scale is not None:
                    src.scales = [scale] * src.count
                    src.offsets = [0.0] * src.count
                if unit:
                    src.units = [unit] * src.count
                names = [description] if isinstance(description, str) else description or []
                for band, name in enumerate(names, start=1):
                    src.set_band_description(band, name)
                rasterio.shutil.copy(src, tmp, driver="COG", **options)
            check_whole(tmp)
        except (RasterioError, CPLE_BaseError, SystemError) as exc:
            # GDAL words a full disk as a seek error, an unknown error, or not at all
            if shutil.disk_usage(tmp.parent).free < FULL_DISK_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path.parent)) \
                    from None
            raise OSError(errno.EIO, f"{path.name} was not written whole: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                          str(path.parent)) from None
        finally:
            if hidden is not None:
                stack[:, nodata_where] = hidden
    return path


@contextlib.contextmanager
def _in_place(stack: np.ndarray) -> Iterator[rasterio.io.DatasetWriter]:
    """A GDAL in-memory raster over the (bands, rows, cols) `stack` itself, not a copy of it.

    Any strides with positive steps do (a map's (rows, cols, classes) probabilities seen band
    first); others are copied once. GDAL ≥ 3.10 opens such a raster only when told to.
    """
    if any(step <= 0 for step in stack.strides) or not stack.flags.aligned:
        stack = np.ascontiguousarray(stack)
    count, height, width = stack.shape
    band_step, line_step, pixel_step = stack.strides
    name = (f"MEM:::DATAPOINTER={stack.ctypes.data},PIXELS={width},LINES={height},"
            f"BANDS={count},DATATYPE={_gdal_typename(stack.dtype.name)},"
            f"PIXELOFFSET={pixel_step},LINEOFFSET={line_step},BANDOFFSET={band_step}")
    with (rasterio.Env(GDAL_MEM_ENABLE_OPEN="YES"), warnings.catch_warnings()):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # georeferenced just after
        with rasterio.open(name, "r+") as src:
            yield src


def check_whole(path: Path) -> None:
    """Fail unless every block of every band of the GeoTIFF at `path` lies inside the file.

    libtiff reports some failed writes (a full disk) only on its own stderr and GDAL closes
    the file as if all went well; a file whose blocks point past its end is not published.
    The last block of each band is decoded too. Reads no more than one block a band.
    """
    size = path.stat().st_size
    with rasterio.open(path) as src:
        rows, cols = (-(-n // b) for n, b in zip(src.shape, src.block_shapes[0]))
        for band in range(1, src.count + 1):
            for r in range(rows):
                for c in range(cols):
                    offset = src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=band)
                    length = src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=band)
                    if offset is None or length is None or int(offset) + int(length) > size:
                        raise RasterioError(f"block {r},{c} of band {band} is not in the file")
            src.read(band, window=((src.height - 1, src.height), (src.width - 1, src.width)))


def class_colormap(colors: list[tuple[int, int, int]]) -> dict[int, tuple[int, int, int, int]]:
    """Palette for codes 0…n-1, with the no-data code transparent."""
    cmap = {i: (*c, 255) for i, c in enumerate(colors)}
    cmap[NODATA] = (0, 0, 0, 0)
    return cmap


#: GDAL's raster-attribute-table field types and usages (gdal.h: GDALRATFieldType/Usage).
_RAT_FIELDS = (("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8),
               ("Alpha", 0, 9))


def write_styles(raster: str | Path, legend: Legend) -> Path:
    """Name the codes of a categorical GeoTIFF for every client; returns the QGIS style's path.

    GDAL (`gdalinfo`), QGIS and ArcGIS read the category names and the attribute table (value,
    class, colour) from RASTER.aux.xml, so the codes keep their names without the QGIS style;
    QGIS loads RASTER.qml (same name as the raster) as the layer's style. The colour table
    itself is in the GeoTIFF (`write_cog`'s `colormap`). What an existing RASTER.aux.xml holds
    besides band 1's description, names and table (statistics, metadata) is kept.
    """
    path = Path(f"{raster}.aux.xml")
    root = ET.Element("PAMDataset")
    if path.is_file():
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            raise DataError(f"{path} is not a GDAL sidecar (unreadable XML): move it away "
                            "first") from None
    band = next((b for b in root.iter("PAMRasterBand") if b.get("band") == "1"), None)
    if band is None:
        band = ET.SubElement(root, "PAMRasterBand", band="1")
    for tag in ("Description", "CategoryNames", "GDALRasterAttributeTable"):
        for old in band.findall(tag):
            band.remove(old)
    ET.SubElement(band, "Description").text = legend.description
    names = ET.SubElement(band, "CategoryNames")
    for name in legend.names:
        ET.SubElement(names, "Category").text = name
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for i, (field, kind, usage) in enumerate(_RAT_FIELDS):
        defn = ET.SubElement(table, "FieldDefn", index=str(i))
        for tag, value in (("Name", field), ("Type", kind), ("Usage", usage)):
            ET.SubElement(defn, tag).text = str(value)
    for i, (name, rgb) in enumerate(zip(legend.names, legend.colors)):
        row = ET.SubElement(table, "Row", index=str(i))
        for value in (i, name, *rgb, 255):
            ET.SubElement(row, "F").text = str(value)
    ET.indent(root)
    write_text_atomic(path, ET.tostring(root, encoding="unicode") + "\n")
    style = Path(raster).with_suffix(".qml")
    write_qgis_style(style, legend)
    return style


def write_qgis_style(path: str | Path, legend: Legend) -> None:
    """A QGIS layer style (.qml): a paletted renderer with the legend's names and colours."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" label={quoteattr(name)} alpha="255" '
        f'color="{color}"/>'
        for i, (name, color) in enumerate(zip(legend.names, legend.hex_colors))
    )
    qml = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""
    write_text_atomic(path, qml)


def write_legend(raster: str | Path, legend: Legend) -> Path:
    """Give a categorical GeoTIFF written elsewhere (rioxarray, GDAL) geolulc's legend.

    The colour table is written into the file, then the category names, attribute table and
    QGIS style beside it (`write_styles`); returns the style's path. Updating a GeoTIFF in place
    appends to it, so a COG stays valid as a GeoTIFF but loses its cloud-optimised layout.
    """
    try:
        with rasterio.open(raster, "r+") as dst:
            if dst.count != 1 or dst.dtypes[0] != "uint8":
                raise DataError(f"{raster} is not a one-band uint8 raster of class codes")
            dst.write_colormap(1, class_colormap(list(legend.colors)))
            dst.set_band_description(1, legend.description)
    except RasterioError as exc:
        raise DataError(f"cannot write a colour table into {raster}: {exc}") from None
    return write_styles(raster, legend)
