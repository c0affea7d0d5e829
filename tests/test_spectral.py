"""Spectral change and the combined change probability: constructed stacks where the answer is
known (illumination, misregistration, a real change), then real OSCD pairs against their labels."""

import numpy as np
import pytest

from geolulc.change_detection.detect import DateMap, compare, transition_weights
from geolulc.change_detection.spectral import SPECTRAL_BANDS, change_score, fit_normalisation
from geolulc.errors import GeolulcError

N = len(SPECTRAL_BANDS)


def textured(seed=0, size=96):
    """A field-like surface: smooth patches of different reflectance plus sensor noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(500, 4000, (N, size // 8, size // 8))
    surface = np.kron(coarse, np.ones((8, 8)))
    return surface + rng.normal(0, 30, surface.shape)


def test_illumination_and_season_wide_brightness_are_not_change():
    before = textured()
    rng = np.random.default_rng(1)
    gain = np.linspace(0.8, 1.3, N)[:, None, None]
    after = before * gain + 150 + rng.normal(0, 30, before.shape)  # another sun, another haze
    valid = np.ones(before.shape[1:], dtype=bool)
    score = change_score(before, after, valid)
    assert np.nanmedian(score) < 3 and np.nanquantile(score, 0.999) < 9
    # without the normalisation the same pair would be one big change
    raw = ((after - before) / 30) ** 2
    assert np.median(raw.mean(0)) > 100


def test_a_one_pixel_misregistration_is_not_change():
    before = textured(2)
    after = np.roll(before, 1, axis=2) + np.random.default_rng(3).normal(0, 30, before.shape)
    score = change_score(before, after, np.ones(before.shape[1:], dtype=bool))
    assert np.nanquantile(score[:, 2:], 0.99) < 9  # the wrapped first column aside


def test_a_new_building_is_change_and_no_data_is_not():
    before = textured(4)
    after = before + np.random.default_rng(5).normal(0, 30, before.shape)
    after[:, 40:50, 40:50] = 2500 + np.arange(N)[:, None, None] * 200  # bright, flat roof
    valid = np.ones(before.shape[1:], dtype=bool)
    valid[:10] = False  # cloud on one date
    score = change_score(before, after, valid)
    assert np.all(score[42:48, 42:48] > 50)
    outside = np.ones_like(valid)
    outside[36:54, 36:54] = False
    assert np.nanquantile(score[outside & valid], 0.999) < 9
    assert np.isnan(score[:10]).all()


def test_too_few_common_pixels_is_an_error():
    with pytest.raises(GeolulcError, match="clear pixels in common"):
        fit_normalisation(np.ones((N, 10)), np.ones((N, 10)))


DW = ["water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub", "built",
      "bare", "snow_and_ice"]


def test_transition_weights_follow_the_rule():
    w = transition_weights(DW)
    i = {c: k for k, c in enumerate(DW)}
    assert w[i["crops"], i["built"]] == 1 and w[i["trees"], i["crops"]] == 1
    assert w[i["crops"], i["bare"]] == 0.2 and w[i["grass"], i["crops"]] == 0.2  # seasons
    assert w[i["built"], i["built"]] == 0.5 and w[i["crops"], i["crops"]] == 0.2
    assert w[i["water"], i["crops"]] == 0.8 and w[i["snow_and_ice"], i["built"]] == 0.05
    eurosat = transition_weights(["AnnualCrop", "Forest", "Residential", "SeaLake"])
    assert eurosat[0, 2] == 1 and eurosat[1, 0] == 1 and eurosat[0, 0] == 0.2


def one_class_map(name, code, shape=(4, 4)):
    from affine import Affine
    from pyproj import CRS
    labels = np.full(shape, code, dtype=np.uint8)
    probs = np.zeros((*shape, len(DW)), dtype=np.float32)
    probs[..., code] = 1
    return DateMap(name, labels, probs, CRS.from_epsg(32631), Affine(10, 0, 0, 0, -10, 0), "dw",
                   DW, [(0, 0, 0)] * len(DW))


def test_combined_probability_weighs_lasting_transitions_over_seasonal_ones():
    spectral = np.full((4, 4), 12.0, dtype=np.float32)  # the same spectral change everywhere
    to_built = compare(one_class_map("a", 4), one_class_map("b", 6), None, "combined", spectral)
    seasonal = compare(one_class_map("a", 4), one_class_map("b", 7), None, "combined", spectral)
    assert to_built.threshold == 0.5
    assert to_built.probability[0, 0] == pytest.approx(144 / (144 + 81))  # 12 × 1
    assert seasonal.probability[0, 0] == pytest.approx(2.4 ** 2 / (2.4 ** 2 + 81))  # 12 × 0.2
    assert (to_built.mask == 1).all() and (seasonal.mask == 0).all()
    spectral[0, 0] = np.nan  # not clear on both dates: no data, not change
    masked = compare(one_class_map("a", 4), one_class_map("b", 6), None, "combined", spectral)
    assert masked.mask[0, 0] == 255 and np.isnan(masked.probability[0, 0])
    with pytest.raises(GeolulcError, match="scenes of both dates"):
        compare(one_class_map("a", 4), one_class_map("b", 6), None, "combined")


@pytest.fixture(scope="module")
def rennes_scores(data_dir, tmp_path_factory):
    from geolulc.change_detection.evaluate import evaluate_city
    from geolulc.mapping.request import MapRequest
    req = MapRequest(out_dir=tmp_path_factory.mktemp("ev"), name="t", progress=False)
    return evaluate_city(data_dir / "oscd" / "rennes", req, [], ["combined", "tv"])


def test_real_change_is_found_in_rennes(rennes_scores):
    """Rennes, 2016-05 → 2017-10 (OSCD): the combined change finds the labelled construction
    (measured pixel F1 0.52) where the land-cover change alone finds far less (tv: 0.14)."""
    combined, tv = rennes_scores["results"]
    assert combined["method"] == "combined" and combined["threshold"] == 0.5
    assert combined["pixel"]["f1"] > 0.4 and combined["pixel"]["precision"] > 0.3
    assert tv["pixel"]["f1"] < combined["pixel"]["f1"] / 2


def test_a_scene_against_itself_changes_nowhere(data_dir, tmp_path):
    from conftest import run_cli
    scene = data_dir / "oscd" / "nantes" / "imgs_1"
    result = run_cli("change", "--before", str(scene), "--after", str(scene), "--out",
                     str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    import json
    change = json.loads(result.stdout)["changes"][0]
    assert change["method"] == "combined" and change["valid_cells"] > 200_000
    assert change["changed_cells"] == 0
    # every raster written on the way (both dates' maps, the change rasters) is a valid COG
    from rio_cogeo.cogeo import cog_validate
    written = sorted(tmp_path.glob("*.tif"))
    assert len(written) == 2 * 4 + 3  # landcover, confidence, probabilities, count; 3 change
    for path in written:
        valid, errors, _ = cog_validate(str(path))
        assert valid, (path.name, errors)


def test_dates_of_different_processing_levels_are_refused(data_dir, local_es_item, tmp_path):
    from conftest import run_cli
    result = run_cli("change", "--before", str(data_dir / "oscd" / "nantes" / "imgs_1"),
                     "--after", str(local_es_item), "--out", str(tmp_path))
    assert result.returncode == 1 and "different processing levels" in result.stderr
    assert "Traceback" not in result.stderr


def test_scenes_without_the_spectral_bands(data_dir, tiny_l2a_model, tmp_path):
    """Four-band scenes: `auto` falls back to the land cover (with a warning), an explicit
    `combined` is refused before anything is classified."""
    from conftest import run_cli
    folders = []
    for date in ("imgs_1", "imgs_2"):
        folder = tmp_path / date
        folder.mkdir()
        for band in ("B02", "B03", "B04", "B08"):
            src = next((data_dir / "oscd" / "rennes" / date).glob(f"*_{band}.tif"))
            (folder / src.name).symlink_to(src)
        folders.append(folder)
    args = ["change", "--before", str(folders[0]), "--after", str(folders[1]), "--model",
            str(tiny_l2a_model), "--stride", "32", "--json"]
    auto = run_cli(*args, "--out", str(tmp_path / "a"))
    assert auto.returncode == 0, auto.stderr
    assert "lack band(s) B11, B12" in auto.stderr
    import json
    assert json.loads(auto.stdout)["changes"][0]["method"] == "tv"
    refused = run_cli(*args, "--method", "combined", "--out", str(tmp_path / "c"))
    assert refused.returncode == 1 and "lack band(s) B11, B12" in refused.stderr
    assert not (tmp_path / "c").exists()


def test_the_sample_drawn_from_strips_of_each_chunk_fits_as_the_whole_does(data_dir,
                                                                            monkeypatch):
    """The normalisation's sample is drawn from a strip of rows of each chunk (a whole tile's
    sampling pass then reads 17 of every 500 rows): on Rennes cut in chunks of 64 rows, with
    a sample small enough that each strip is 27 of them, the scores agree with a sample drawn
    from every row."""
    import geolulc.change_detection.spectral as spectral
    from geolulc.io.read import Masking
    from geolulc.io.scenes import load_scene
    from geolulc.mapping.request import MapRequest, plan_grid
    from geolulc.models.model import load_model

    city = data_dir / "oscd" / "rennes"
    before, after = [load_scene(city / "imgs_1")], [load_scene(city / "imgs_2")]
    grid = plan_grid(MapRequest(), None, before, load_model("dynamic-world"))
    inside = np.ones((grid.rows, grid.cols), dtype=bool)
    monkeypatch.setattr(spectral, "SAMPLE_PIXELS", 20_000)
    reads = []
    real_read = spectral.StackReader.read

    def counted(self, window):
        reads.append(int(window.height))
        return real_read(self, window)

    monkeypatch.setattr(spectral.StackReader, "read", counted)
    scores = {}
    for strip in (4, 10_000):  # strips, or every row of each chunk
        monkeypatch.setattr(spectral, "SAMPLE_STRIP", strip)
        reads.clear()
        scores[strip] = spectral.spectral_change(before, after, grid, (Masking(), Masking()), 64,
                                                 inside)
        sampled, scored = reads[:len(reads) // 2], reads[len(reads) // 2:]  # the two passes
        assert (sum(sampled) < sum(scored)) == (strip == 4), (sampled, scored)
    monkeypatch.setattr(spectral, "SAMPLE_STRIP", 4)
    monkeypatch.setattr(spectral, "SAMPLE_FALLBACK", 10 ** 9)  # the strips hold too few pixels
    reads.clear()
    again = spectral.spectral_change(before, after, grid, (Masking(), Masking()), 64, inside)
    np.testing.assert_array_equal(again, scores[10_000])  # so every row was sampled
    a, b = scores[4], scores[10_000]
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(np.isfinite(a), np.isfinite(b)) and ok.sum() > 100_000
    assert np.corrcoef(a[ok], b[ok])[0, 1] > 0.99
    assert np.median(np.abs(a[ok] - b[ok]) / np.maximum(b[ok], 1e-3)) < 0.05
