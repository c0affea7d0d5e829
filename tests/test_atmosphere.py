"""L2A for L1C models: the modelled atmosphere, and the real L2A product read with it."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geolulc.core.grid import grid_for_bounds
from geolulc.io.atmosphere import boa_to_toa, toa_to_boa
from geolulc.io.read import Masking, StackReader
from geolulc.io.scenes import load_scene


def test_path_radiance_has_the_size_of_a_real_atmosphere():
    """A dark surface (2 % reflectance) under a 48° sun and AOT 0.2: L1C is several hundred DN
    brighter in blue than L2A, less in green and red, almost nothing in the SWIR."""
    dark = np.full(4, 200, dtype=np.uint16)
    added = {b: int(boa_to_toa(dark, b, 42.0, 0.2)[0]) - 200
             for b in ("B02", "B03", "B04", "B08", "B12")}
    assert 500 < added["B02"] < 900 and 250 < added["B03"] < 550 and 100 < added["B04"] < 350
    assert added["B02"] > added["B03"] > added["B04"] > added["B08"] > added["B12"] >= 0
    more_haze = int(boa_to_toa(dark, "B02", 42.0, 0.5)[0]) - 200
    assert more_haze > added["B02"] + 100  # more aerosol, brighter


@pytest.mark.parametrize("band", ["B02", "B04", "B08", "B11"])
def test_toa_and_boa_invert_each_other(band):
    dn = np.array([0, 50, 800, 2500, 6000], dtype=np.uint16)
    back = toa_to_boa(boa_to_toa(dn, band, 35.0, np.float32(0.15)), band, 35.0, 0.15)
    assert back[0] == 0  # no data stays no data
    assert np.abs(back.astype(int) - dn.astype(int))[1:].max() <= 2


def test_real_l2a_product_is_restored_with_its_own_aot(local_es_item):
    """The Earth Search item: sun elevation from its properties, AOT (≈0.196) from its layer."""
    scene = load_scene(local_es_item)
    assert scene.level == "L2A" and scene.aot and scene.aot.endswith("AOT.tif")
    with rasterio.open(scene.bands["B02"]) as src:  # 6 km in the middle of the tile
        x, y = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
    grid = grid_for_bounds((x, y, x + 6000, y + 6000), "EPSG:32629", 100.0, 64, 64)
    window = Window(0, 0, grid.read_shape[1], grid.read_shape[0])
    reads = {}
    for toa in (False, True):
        with StackReader([scene], ["B02", "B04", "B12"], grid,
                         Masking(restore_toa=toa)) as reader:
            reads[toa] = reader.read(window)
    boa, toa = reads[False], reads[True]
    ok = boa.clear
    assert ok.mean() > 0.9
    expected = boa_to_toa(boa.dn[0][ok], "B02", 90 - 48.293248430895, 0.196)
    assert np.abs(toa.dn[0][ok].astype(int) - expected.astype(int)).max() <= 12
    assert (toa.dn[0][ok].astype(int) - boa.dn[0][ok]).mean() > 150  # bright desert: still added
