"""Render categorical geolulc rasters with QGIS itself, and check QGIS reads what GDAL reads.

For each RASTER.tif given, QGIS opens the layer as a user's QGIS would (its default style is the
RASTER.qml beside it), then loads that .qml explicitly with loadNamedStyle; the script prints
the palette QGIS holds (value, label, colour) and fails unless it equals, row for row, the
raster attribute table, the category names and the colour table that GDAL reads from the file
and its .aux.xml. It then lays out the map with a title, legend and scale bar, exports it as a
PNG (800 px wide) and fails unless every class covering at least 0.5 % of the raster shows in
the picture in its palette colour. Needs QGIS's Python bindings, which live in the system
Python, not the project's (Debian: apt-get install python3-qgis qgis-providers). Usage:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 pipelines/render-qgis.py \\
        RASTER.tif OUT.png "TITLE" [RASTER.tif OUT.png "TITLE" ...]

docs/qgis_landcover.png and docs/qgis_change.png were made this way (see docs/gis-clients.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsLayerTree,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemScaleBar,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsMapLayerLegendUtils,
    QgsPalettedRasterRenderer,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QFont, QImage

WIDTH_PX, PAGE_W, MAP_W, MARGIN = 800, 215.0, 120.0, 5.0  # page and map sizes in mm
MM = QgsUnitTypes.LayoutMillimeters


def gdal_rows(path: Path) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value, class, colour) of each attribute-table row, checked against names and colour table."""
    dataset = gdal.Open(str(path))  # kept: a band outlives no dataset in GDAL's Python
    band = dataset.GetRasterBand(1)
    rat, names, table = band.GetDefaultRAT(), band.GetCategoryNames(), band.GetColorTable()
    if rat is None or not names or table is None:
        sys.exit(f"{path}: GDAL finds no attribute table, category names or colour table")
    col = {usage: rat.GetColOfUsage(usage) for usage in
           (gdal.GFU_MinMax, gdal.GFU_Name, gdal.GFU_Red, gdal.GFU_Green, gdal.GFU_Blue)}
    rows = []
    for i in range(rat.GetRowCount()):
        value = rat.GetValueAsInt(i, col[gdal.GFU_MinMax])
        rgb = tuple(rat.GetValueAsInt(i, col[u]) for u in (gdal.GFU_Red, gdal.GFU_Green, gdal.GFU_Blue))
        name = rat.GetValueAsString(i, col[gdal.GFU_Name])
        if names[value] != name or tuple(table.GetColorEntry(value)[:3]) != rgb:
            sys.exit(f"{path}: code {value}: attribute table says {name} {rgb}, category name "
                     f"{names[value]}, colour table {table.GetColorEntry(value)[:3]}")
        rows.append((value, name, rgb))
    return rows


def qgis_rows(layer: QgsRasterLayer) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value, label, colour) of the paletted renderer QGIS built for the layer."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer):
        sys.exit(f"{layer.source()}: QGIS renders it as {renderer.type()}, not paletted")
    return [(int(c.value), c.label, (c.color.red(), c.color.green(), c.color.blue()))
            for c in renderer.classes()]


def open_styled(path: Path) -> QgsRasterLayer:
    """The layer as QGIS opens it, with its .qml loaded; fails unless QGIS and GDAL agree."""
    layer = QgsRasterLayer(str(path), path.stem)  # default options: the default style is loaded
    if not layer.isValid():
        sys.exit(f"{path}: QGIS cannot open it")
    by_default = qgis_rows(layer)
    qml = path.with_suffix(".qml")
    message, ok = layer.loadNamedStyle(str(qml))
    if not ok:
        sys.exit(f"{qml}: QGIS cannot load it: {message}")
    palette, rows = qgis_rows(layer), gdal_rows(path)
    print(f"{path.name}: QGIS's default style {Path(layer.styleURI()).name}, "
          f"{len(by_default)} palette entries as opened")
    for value, label, rgb in palette:
        print(f"  {value:3d}  {label:40s} #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
    if palette != rows:
        sys.exit(f"{qml}: QGIS's palette differs from GDAL's attribute table:\n"
                 f"  QGIS {palette}\n  GDAL {rows}")
    if by_default != palette:
        sys.exit(f"{path}: QGIS did not pick up {qml.name} as the default style")
    print(f"  = GDAL's attribute table, category names and colour table ({len(rows)} rows)")
    return layer


def export(layer: QgsRasterLayer, png: Path, title: str) -> tuple[int, int, int, int]:
    """A page with the title, the map, its legend and a scale bar, exported to `png`.

    Returns the map's rows and columns in the picture (top, bottom, left, right).
    """
    project = QgsProject.instance()
    project.addMapLayer(layer)
    project.setCrs(layer.crs())
    project.setEllipsoid("EPSG:7030")  # WGS 84, for the scale bar
    extent = layer.extent()
    map_h = MAP_W * extent.height() / extent.width()
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(PAGE_W, map_h + 30, MM))

    label = QgsLayoutItemLabel(layout)
    label.setText(title)
    label.setFont(QFont("DejaVu Sans", 13))
    layout.addLayoutItem(label)
    label.attemptMove(QgsLayoutPoint(MARGIN, 3, MM))
    label.attemptResize(QgsLayoutSize(PAGE_W - 2 * MARGIN, 9, MM))

    item = QgsLayoutItemMap(layout)
    layout.addLayoutItem(item)
    item.attemptMove(QgsLayoutPoint(MARGIN, 13, MM))
    item.attemptResize(QgsLayoutSize(MAP_W, map_h, MM))
    item.setLayers([layer])
    item.setCrs(layer.crs())
    item.setExtent(extent)
    item.setFrameEnabled(True)

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Legend")
    legend.setAutoUpdateModel(False)
    root = QgsLayerTree()
    node = root.addLayer(layer)
    legend.model().setRootGroup(root)
    # the classes under the layer's name; QGIS's first node ("Band 1: DESCRIPTION (Palette)") is left out
    classes = len(legend.model().layerLegendNodes(node))
    QgsMapLayerLegendUtils.setLegendNodeOrder(node, list(range(1, classes)))
    legend.model().refreshLayerLegend(node)
    legend.setLinkedMap(item)
    layout.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(MARGIN + MAP_W + 4, 13, MM))

    bar = QgsLayoutItemScaleBar(layout)
    bar.setStyle("Single Box")
    bar.setLinkedMap(item)
    bar.applyDefaultSize()
    bar.setUnits(QgsUnitTypes.DistanceKilometers)
    bar.setNumberOfSegments(2)
    bar.setUnitsPerSegment(1)
    bar.setUnitLabel("km")
    layout.addLayoutItem(bar)
    bar.attemptMove(QgsLayoutPoint(MARGIN, 13 + map_h + 3, MM))

    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = (WIDTH_PX + 0.5) / (PAGE_W / 25.4)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # QGIS's try to georeference a PNG in place
    result = QgsLayoutExporter(layout).exportToImage(str(png), settings)
    gdal.PopErrorHandler()
    if result != QgsLayoutExporter.Success:
        sys.exit(f"{png}: QGIS could not export the layout (error {result})")
    project.removeMapLayer(layer.id())
    px = WIDTH_PX / PAGE_W  # pixels a millimetre; 2 px in from the frame
    return (round(13 * px) + 2, round((13 + map_h) * px) - 2, round(MARGIN * px) + 2,
            round((MARGIN + MAP_W) * px) - 2)


def check_picture(png: Path, path: Path, palette: list[tuple[int, str, tuple[int, int, int]]],
                  box: tuple[int, int, int, int]) -> None:
    """Fail unless each class covering 0.5 % of the raster shows in its colour in the map's `box`."""
    dataset = gdal.Open(str(path))
    band = dataset.GetRasterBand(1)
    counts = np.array(band.GetHistogram(-0.5, 255.5, 256, False, False))
    counts[int(band.GetNoDataValue())] = 0
    image = QImage(str(png)).convertToFormat(QImage.Format_RGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    top, bottom, left, right = box
    argb = np.frombuffer(bits, np.uint32).reshape(image.height(), -1)[top:bottom, left:right]
    found = {int(v): n for v, n in zip(*np.unique(argb & 0xFFFFFF, return_counts=True))}
    print(f"{png}: {image.width()}×{image.height()} px")
    for value, label, (r, g, b) in palette:
        share = counts[value] / counts.sum()
        shown = found.get((r << 16) | (g << 8) | b, 0)
        print(f"  {label:40s} {100 * share:5.1f} % of the raster, {shown:7d} px in the map")
        if share >= 0.005 and shown == 0:
            sys.exit(f"{png}: {label} covers {100 * share:.1f} % of {path.name} but its colour "
                     f"is not in the map")


def render(args: list[str]) -> None:
    """Check and render each (raster, png, title) triple."""
    for raster, png, title in zip(args[::3], args[1::3], args[2::3]):
        layer = open_styled(Path(raster))
        palette = qgis_rows(layer)
        box = export(layer, Path(png), title)  # the project takes the layer and removes it
        check_picture(Path(png), Path(raster), palette, box)


def main(args: list[str]) -> None:
    """Run `render` in a QGIS application; a failure's message is the exit status."""
    if not args or len(args) % 3:
        sys.exit(__doc__)
    app = QgsApplication([], False)
    app.initQgis()
    failure = None
    try:
        render(args)
    except SystemExit as error:  # its traceback, and the layers it holds, go before QGIS does
        failure = error.code
    app.exitQgis()
    sys.exit(failure)


if __name__ == "__main__":
    main(sys.argv[1:])
