"""A map does not depend on how the work is cut: chunk rows, Dask workers, a killed and resumed run.

Cloudy real L1C scenes, so the s2cloudless mask, its shadows and the fill of the masked pixels
are all exercised where chunks meet.
"""

import json
import signal
import subprocess
import time

import numpy as np
import pytest
import rasterio

from conftest import run_cli

OUTPUTS = ("landcover", "confidence", "probabilities", "count")


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_outputs(folder, name="m"):
    arrays = {}
    for kind in OUTPUTS:
        with rasterio.open(folder / f"{name}_{kind}.tif") as src:
            arrays[kind] = (src.read(), src.transform, src.nodata)
    stats = json.loads((folder / f"{name}_stats.json").read_text())
    return arrays, stats["run"]["cloud_masked_pixels"]


def assert_same(a, b, what):
    arrays_a, masked_a = a
    arrays_b, masked_b = b
    for kind in OUTPUTS:
        data_a, transform_a, nodata_a = arrays_a[kind]
        data_b, transform_b, nodata_b = arrays_b[kind]
        assert transform_a == transform_b and nodata_a == nodata_b, (what, kind)
        differ = int(np.count_nonzero(data_a != data_b))
        assert differ == 0, f"{what}: {differ} values of {kind} differ"
    assert masked_a == masked_b, what


def test_cli_map_is_the_same_for_any_chunking_workers_and_resume(data_dir, tmp_path):
    """Paris, second date: 15 % of the scene under cloud and shadow (s2cloudless)."""
    pytest.importorskip("distributed")
    scene = str(data_dir / "oscd" / "paris" / "imgs_2")
    common = ["map", "--scene", scene, "--quiet", "--name", "m"]
    runs = {"default": [], "rows100": ["--chunk-rows", "100"],
            "workers": ["--workers", "2", "--chunk-rows", "300"]}
    outputs = {}
    for label, extra in runs.items():
        result = run_cli(*common, *extra, "--out", str(tmp_path / label))
        assert result.returncode == 0, result.stderr
        outputs[label] = read_outputs(tmp_path / label)
    masked = outputs["default"][1]
    assert masked > 10_000  # the scene really is cloudy: masks meet chunk borders
    # killed after a few chunks, then resumed from the cache with the rest
    args = [*common, "--chunk-rows", "20", "--out", str(tmp_path / "resumed")]
    proc = subprocess.Popen(["geolulc", *args], stderr=subprocess.DEVNULL,
                            preexec_fn=default_sigint)
    deadline = time.time() + 120
    cache = tmp_path / "resumed" / ".geolulc-cache"
    while time.time() < deadline and len(list(cache.glob("*/chunk-*.npz"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    done = len(list(cache.glob("*/chunk-*.npz")))
    assert 3 <= done < 27
    resumed = run_cli("-v", *args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {done} of 27 chunks already done" in resumed.stderr
    outputs["resumed"] = read_outputs(tmp_path / "resumed")
    for label in [*runs, "resumed"][1:]:
        assert_same(outputs["default"], outputs[label], label)


def test_api_map_is_the_same_for_any_chunking(data_dir):
    """Bercy, first date (13 % masked), in memory: labels, probabilities and no data (chunk rows
    2 were checked by hand too; they take ten times as long)."""
    import geolulc
    from geolulc import MapOptions

    scene = data_dir / "oscd" / "bercy" / "imgs_1"
    maps = {rows: geolulc.classify(scenes=[scene], options=MapOptions(chunk_rows=rows))
            for rows in (None, 24, 100, 300)}
    base = maps[None]
    assert np.count_nonzero(base.labels == 255) > 0.1 * base.labels.size
    for rows, other in maps.items():
        np.testing.assert_array_equal(other.labels, base.labels, err_msg=str(rows))
        np.testing.assert_array_equal(other.probabilities, base.probabilities, err_msg=str(rows))
        assert other.result.masked_pixels == base.result.masked_pixels


def test_dense_patch_map_with_best_composite_and_dilation_is_the_same_for_any_chunking(data_dir):
    """A patch classifier at stride 16 over two cloudy acquisitions, "best" composite, masks grown."""
    import geolulc
    from geolulc import MapOptions

    city = data_dir / "oscd" / "paris"
    scenes = [city / "imgs_2", city / "imgs_1"]
    maps = {rows: geolulc.classify(scenes=scenes, model="eurosat-ms",
                                   options=MapOptions(stride=16, composite="best", mask_dilate=5,
                                                      chunk_rows=rows))
            for rows in (1, 7, 40)}
    base = maps[1]
    for rows, other in maps.items():
        np.testing.assert_array_equal(other.labels, base.labels, err_msg=str(rows))
        np.testing.assert_array_equal(other.probabilities, base.probabilities, err_msg=str(rows))
        assert other.result.masked_pixels == base.result.masked_pixels


def test_fill_with_context_is_the_fill_of_the_whole_grid():
    """`fill_unclear` with a reach, on a window with 2 × reach of context, is exact."""
    from geolulc.core.windows import fill_unclear

    rng = np.random.default_rng(3)
    h, w, reach = 300, 120, 9
    clear = rng.random((h, w)) > 0.02
    for _ in range(40):  # clouds of every size, some wider than the reach
        r, c, s = rng.integers(0, h), rng.integers(0, w), rng.integers(2, 30)
        clear[r:r + s, c:c + s] = False
    dn = rng.integers(1, 10_000, (2, h, w)).astype(np.uint16)
    dn[:, ~clear] = 0
    whole = fill_unclear(dn, clear, reach=reach)
    for top in (0, 37, 150, 261):
        bottom = min(top + 39, h)
        lo, hi = max(top - 2 * reach, 0), min(bottom + 2 * reach, h)
        part = fill_unclear(dn[:, lo:hi], clear[lo:hi], reach=reach)
        np.testing.assert_array_equal(part[:, top - lo:bottom - lo], whole[:, top:bottom])
    # without the context the fill of the window's edges would differ
    np.testing.assert_raises(AssertionError, np.testing.assert_array_equal,
                             [fill_unclear(dn[:, 150:189], clear[150:189], reach=reach)],
                             [whole[:, 150:189]])
