import numpy as np
import pytest

from geolulc.core.grid import grid_for_bounds, utm_crs
from geolulc.errors import GeolulcError
from geolulc.mapping.patches import cut_patches


@pytest.mark.parametrize("lon,lat,epsg", [(2.35, 48.85, 32631), (-11.47, 24.8, 32629),
                                          (-46.6, -23.5, 32723), (179.9, 10, 32660)])
def test_utm_zone(lon, lat, epsg):
    assert utm_crs(lon, lat).to_epsg() == epsg


def test_grid_cells_cover_bounds_and_align():
    grid = grid_for_bounds((200_005, 2_790_001, 206_399, 2_796_399), "EPSG:32629", 10, 64, 64)
    assert (grid.x0, grid.y0) == (199_680, 2_796_800)  # multiples of the 640 m cell
    assert grid.map_bounds[0] <= 200_005 and grid.map_bounds[2] >= 206_399
    assert grid.map_bounds[1] <= 2_790_001 and grid.map_bounds[3] >= 2_796_399
    assert (grid.rows, grid.cols) == (11, 11)
    assert grid.margin == 0 and grid.read_shape == (704, 704)


def test_overlapping_stride_reads_a_margin():
    grid = grid_for_bounds((0, 0, 1000, 1000), "EPSG:32631", 10, 64, 16)
    assert grid.margin == 24
    assert grid.cell_size == 160
    assert grid.read_transform.c == grid.x0 - 240 and grid.read_transform.f == grid.y0 + 240
    assert grid.read_shape == (grid.rows * 16 + 48, grid.cols * 16 + 48)
    with pytest.raises(GeolulcError, match="even margin"):
        grid_for_bounds((0, 0, 1000, 1000), "EPSG:32631", 10, 64, 15)


def test_cut_patches_positions_and_clear_share():
    dn = np.arange(2 * 128 * 192, dtype=np.uint16).reshape(2, 128, 192) + 1
    clear = np.ones((128, 192), dtype=bool)
    clear[:64, :64] = False  # first patch fully masked
    clear[64:, 64:96] = False  # half of the patch at (1, 1) masked: still kept at 0.5
    patches = cut_patches(dn, clear, 64, 64, first_row=5, min_clear=0.5)
    assert list(zip(patches.rows, patches.cols)) == [(5, 1), (5, 2), (6, 0), (6, 1), (6, 2)]
    np.testing.assert_array_equal(patches.pixels[0], dn[:, 0:64, 64:128])
    strict = cut_patches(dn, clear, 64, 64, min_clear=0.6)
    assert len(strict.rows) == 4
    dense = cut_patches(dn, np.ones_like(clear), 64, 32)
    assert dense.pixels.shape == (3 * 5, 2, 64, 64)
    np.testing.assert_array_equal(dense.pixels[6], dn[:, 32:96, 32:96])
