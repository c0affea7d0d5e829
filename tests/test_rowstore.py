"""Whole-grid arrays kept in files (issue 34): the row store, reading a mapping in row blocks,
and the change steps that were rewritten to work in row blocks, against their plain forms."""

from __future__ import annotations

import numpy as np
from affine import Affine
from pyproj import CRS

from geolulc.change_detection.detect import DateMap, change_probability, compare, transition_weights
from geolulc.change_detection.spectral import _shifted_min
from geolulc.io.rasters import NODATA, PROB_SCALE
from geolulc.io.rowstore import RowStore, release, rows_of


def test_a_row_store_writes_and_reads_rows_and_maps_the_whole(tmp_path):
    rng = np.random.default_rng(1)
    store = RowStore(tmp_path / "s.u16", (7, 5, 3), np.uint16)
    assert store.read(2, 3).sum() == 0  # a new store is zeros
    whole = rng.integers(0, 60000, (7, 5, 3), dtype=np.uint16)
    store.write(0, whole[:4])
    store.write(4, whole[4:])
    np.testing.assert_array_equal(store.read(3, 3), whole[3:6])
    assert store.read(6, 5).shape == (1, 5, 3)  # clipped at the end
    assert store.read(7, 2).shape == (0, 5, 3)  # nothing left: empty, not an error
    store.write(7, whole[:0])
    np.testing.assert_array_equal(store.array(), whole)
    try:
        store.write(6, whole[:2])
    except ValueError as exc:
        assert "does not fit" in str(exc)
    else:
        raise AssertionError("a block past the end was written")


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_rows_of_a_mapping_are_its_rows_and_its_pages_go_back(tmp_path):
    """Row blocks that start and end inside pages (13 rows of 211 bytes) read right; reading a
    64 MB mapping in row blocks, or whole and then releasing it, leaves its pages in the file,
    not in the process."""
    rows, cols = 4000, 211
    store = RowStore(tmp_path / "m.u8", (rows, cols), np.uint8)
    data = (np.arange(rows * cols) % 251).astype(np.uint8).reshape(rows, cols)
    store.write(0, data)
    mapped = store.array()
    for start in range(0, rows, 13):
        np.testing.assert_array_equal(rows_of(mapped, slice(start, start + 13)),
                                      data[start:start + 13])
    np.testing.assert_array_equal(rows_of(mapped[10:], slice(0, 5)), data[10:15])  # a view

    big = RowStore(tmp_path / "big.u8", (4096, 16384), np.uint8)
    for row0 in range(0, 4096, 512):
        big.write(row0, np.full((512, 16384), row0 // 512 + 1, np.uint8))
    whole = big.array()
    before = _rss_mb()
    total = sum(int(rows_of(whole, slice(r, r + 64)).sum()) for r in range(0, 4096, 64))
    assert total == sum(range(1, 9)) * 512 * 16384
    assert _rss_mb() - before < 16  # not the 64 MB read
    assert int(whole.sum()) == total  # every page mapped in
    assert _rss_mb() - before > 48
    release(whole)
    assert _rss_mb() - before < 16
    np.testing.assert_array_equal(whole[::512, 0], np.arange(1, 9))  # still the data


def _naive_compare(before, after, threshold, method, spectral):
    """compare() as it was, on whole arrays."""
    from geolulc.change_detection import detect

    k = len(before.classes)
    valid = before.valid & after.valid
    if spectral is not None:
        valid &= np.isfinite(spectral)
    p_b = before.probabilities.astype(np.float32) / PROB_SCALE
    p_a = after.probabilities.astype(np.float32) / PROB_SCALE
    weights = transition_weights(before.classes)
    if method == "combined":
        w = np.einsum("...i,ij,...j->...", p_b, weights, p_a)
        s = spectral * w
        block = np.clip(s * s / (s * s + detect.HALF_SCORE ** 2), 0, 1)
    else:
        block = change_probability(p_b, p_a, method)
    prob = np.where(valid, block, np.nan)
    fromto = np.full(valid.shape, NODATA, np.uint8)
    fromto[valid] = before.labels[valid] * k + after.labels[valid]
    return fromto, prob


def test_compare_in_row_blocks_is_compare_on_whole_arrays():
    """1100 rows: three blocks of ROWS_PER_BLOCK and a short one."""

    rng = np.random.default_rng(2)
    classes = ["water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
               "built", "bare", "snow_and_ice"]
    maps = []
    for _ in range(2):
        labels = rng.integers(0, 9, (1100, 17)).astype(np.uint8)
        labels[rng.random(labels.shape) < 0.1] = NODATA
        probs = rng.integers(0, 251, (1100, 17, 9)).astype(np.uint8)
        maps.append(DateMap("d", labels, probs, CRS.from_epsg(32631), Affine.identity(), "m",
                            classes, [(0, 0, 0)] * 9))
    spectral = rng.gamma(1.0, 3.0, (1100, 17)).astype(np.float32)
    spectral[rng.random(spectral.shape) < 0.05] = np.nan
    for method, s in (("tv", None), ("combined", spectral)):
        change = compare(maps[0], maps[1], 0.4, method, s)
        fromto, prob = _naive_compare(maps[0], maps[1], 0.4, method, s)
        np.testing.assert_array_equal(change.fromto, fromto)
        np.testing.assert_allclose(change.probability, prob, atol=2e-6, equal_nan=True)
        mask = np.where(np.isnan(prob), NODATA, prob >= 0.4)
        assert (change.mask != mask).sum() <= 2  # float rounding at the threshold only


def test_the_shifted_score_in_row_blocks_is_the_whole_array_one():
    rng = np.random.default_rng(3)
    x = rng.uniform(500, 4000, (6, 301, 407)).astype(np.float32)
    y = x + rng.normal(0, 30, x.shape).astype(np.float32)
    sigma = rng.uniform(20, 40, 6).astype(np.float32)
    pad = np.pad(y, ((0, 0), (1, 1), (1, 1)), mode="edge")
    best = None
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            diff = (pad[:, dy:dy + 301, dx:dx + 407] - x) / sigma[:, None, None]
            score = np.einsum("bhw,bhw->hw", diff, diff) / 6
            best = score if best is None else np.minimum(best, score)
    np.testing.assert_allclose(_shifted_min(x, y, sigma), best, rtol=1e-4, atol=1e-4)
