"""Composites of classified acquisitions (mean of the probabilities, mode of the labels) and the
per-acquisition series, checked against the series' own maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from pyproj import CRS

from geolulc.core.grid import PatchGrid
from geolulc.mapping.chunks import ChunkResult
from geolulc.mapping.classification import ChunkTotals, Classification
from geolulc.mapping.composite import ProbabilityComposite


def _read(path):
    with rasterio.open(path) as src:
        return src.read()


def test_the_mean_probability_composite_is_the_mean_of_the_series(data_dir, tmp_path):
    import geolulc

    city = data_dir / "oscd" / "rennes"
    result = geolulc.make_map(scenes=[city / "imgs_1", city / "imgs_2"], out_dir=tmp_path,
                              name="r", options=geolulc.MapOptions(composite="mean-probability",
                                                                   series=True))
    assert result.run["composite"] == "mean-probability" and len(result.run["series"]) == 2
    dates = ("2015-08-21", "2017-06-21")
    labels = [_read(tmp_path / f"r_{d}_landcover.tif")[0] for d in dates]
    probs = [_read(tmp_path / f"r_{d}_probabilities.tif").astype(int) for d in dates]
    counts = [_read(tmp_path / f"r_{d}_count.tif")[0].astype(int) for d in dates]
    composite = _read(tmp_path / "r_probabilities.tif").astype(int)
    both = (labels[0] != 255) & (labels[1] != 255)
    assert both.mean() > 0.9
    np.testing.assert_array_equal(composite[:, both], (probs[0][:, both] + probs[1][:, both] + 1) // 2)
    only_first = (labels[0] != 255) & (labels[1] == 255)
    np.testing.assert_array_equal(composite[:, only_first], probs[0][:, only_first])
    mapped = _read(tmp_path / "r_landcover.tif")[0]
    np.testing.assert_array_equal(mapped[both], (probs[0] + probs[1]).argmax(0)[both])
    np.testing.assert_array_equal(_read(tmp_path / "r_count.tif")[0], counts[0] + counts[1])
    # where the dates disagree the composite sides with the more confident one
    differ = both & (labels[0] != labels[1])
    assert differ.any() and set(np.unique(mapped[differ])) <= set(np.unique(labels[0][differ])) | \
        set(np.unique(labels[1][differ]))
    # without a series, each chunk is folded into the sums as it comes: the same composite
    folded = geolulc.make_map(scenes=[city / "imgs_1", city / "imgs_2"], out_dir=tmp_path / "f",
                              name="r", options=geolulc.MapOptions(
                                  composite="mean-probability", chunk_rows=64))
    assert folded.run["composite"] == "mean-probability" and "series" not in folded.run
    for kind in ("probabilities", "landcover", "count", "confidence"):
        np.testing.assert_array_equal(_read(tmp_path / "f" / f"r_{kind}.tif"),
                                      _read(tmp_path / f"r_{kind}.tif"), err_msg=kind)
    item = json.loads((tmp_path / "r_2017-06-21.json").read_text())
    assert item["properties"]["datetime"] is None and \
        item["properties"]["start_datetime"].startswith("2017-06-21")


def _acquisition(grid: PatchGrid, labels: list[int], top: list[int]) -> Classification:
    """A classified acquisition of a 1 × n grid: each cell's label with probability `top` (of
    250), the rest spread over the other two classes."""
    probs = np.zeros((1, len(labels), 3), dtype=np.uint8)
    for i, (label, p) in enumerate(zip(labels, top)):
        probs[0, i] = (250 - p) // 2
        probs[0, i, label] = 250 - 2 * ((250 - p) // 2)
    lab = np.array([labels], dtype=np.uint8)
    return Classification(grid, lab, probs, len(labels), 0, {"classify": 1.0},
                          np.ones((grid.stride, len(labels) * grid.stride), dtype=np.uint8))


@pytest.mark.parametrize("method, expected", [("mean-probability", [1, 0]), ("mode", [0, 0])])
def test_mode_counts_votes_where_the_mean_follows_confidence(method, expected):
    """Two acquisitions call cell 0 class 0 weakly (40 %), one calls it class 1 strongly (98 %):
    the mean of the probabilities says 1, the mode 0. Cell 1: all say 0."""
    grid = PatchGrid(CRS.from_epsg(32630), 10.0, 500000.0, 5300000.0, 1, 2, 1, 1)
    composite = ProbabilityComposite(grid, 3, method)
    for labels, top in (([0, 0], [100, 200]), ([0, 0], [100, 200]), ([1, 0], [245, 200])):
        composite.add(_acquisition(grid, labels, top))
    result = composite.result()
    assert result.labels[0].tolist() == expected
    assert result.count.tolist() == [[3, 3]] and composite.timings == {"classify": 3.0}
    assert int(result.probabilities[0, 1].sum()) in (249, 250, 251)


@pytest.mark.parametrize("method", ["mean-probability", "mode"])
@pytest.mark.parametrize("on_disk", ["whole", "folded"])
def test_folding_chunks_is_adding_acquisitions(method, on_disk, tmp_path):
    """A composite fed chunk by chunk (rows 0 and 1 of a 2 × 3 grid, in either order) equals one
    fed whole acquisitions, with its sums in memory or in nameless files (which leave nothing
    behind)."""
    grid = PatchGrid(CRS.from_epsg(32630), 10.0, 500000.0, 5300000.0, 2, 3, 1, 1)
    rng = np.random.default_rng(0)
    whole, folded = (ProbabilityComposite(grid, 4, method, folder=tmp_path if on_disk == kind
                                          else None) for kind in ("whole", "folded"))
    for _ in range(3):
        labels = rng.integers(0, 4, (2, 3)).astype(np.uint8)
        labels[rng.random((2, 3)) < 0.3] = 255
        probs = rng.integers(0, 250, (2, 3, 4)).astype(np.uint8)
        count = rng.integers(0, 3, (2, 3)).astype(np.uint8)
        whole.add(Classification(grid, labels, probs, 6, 2, {"read": 1.0}, count))
        for row0 in (1, 0):
            folded.add_chunk(ChunkResult(row0, labels[row0:row0 + 1], probs[row0:row0 + 1], 1,
                                         count[row0:row0 + 1]))
        folded.add_totals(ChunkTotals(6, 2, {"read": 1.0}))
    a, b = whole.result(), folded.result()
    assert isinstance((a, b)[on_disk == "folded"].probabilities, np.memmap)
    assert list(tmp_path.iterdir()) == []
    for name in ("labels", "probabilities", "count"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.patches, a.masked_pixels, a.timings) == (b.patches, b.masked_pixels, b.timings)


def test_a_series_needs_a_clear_acquisition_and_files_to_write(data_dir, tmp_path):
    import geolulc
    from geolulc.errors import NoDataError, ParameterError

    city = data_dir / "oscd" / "rennes"
    elsewhere = {"type": "Polygon", "coordinates": [[[2.30, 48.80], [2.31, 48.80], [2.31, 48.81],
                                                     [2.30, 48.81], [2.30, 48.80]]]}
    with pytest.raises(NoDataError, match="none of the 2 acquisition"):
        geolulc.make_map(scenes=[city / "imgs_1", city / "imgs_2"], aoi=elsewhere,
                         out_dir=tmp_path, options=geolulc.MapOptions(composite="mode"))
    assert not list(tmp_path.glob("*.tif"))
    with pytest.raises(ParameterError, match="`series` writes one map per acquisition"):
        geolulc.classify(scenes=[city / "imgs_1"], options=geolulc.MapOptions(series=True))
