"""The Python API: one function for every command, keyword arguments, typed results.

    import geolulc
    scenes = geolulc.search(aoi="aoi/rennes.geojson", date="2023-06")
    landcover = geolulc.classify(scenes=scenes, aoi="aoi/rennes.geojson")
    print(landcover.classes, landcover.labels.shape, landcover.grid.crs)
    geolulc.write(landcover, "outputs")

`geolulc map` is `make_map` (`classify` then `write`, resumably), `geolulc change` is
`make_change` (`change` then `write_change`), `geolulc models` is `list_models`; `search`,
`download`, `train`, `evaluate`, `classify_patches` and `evaluate_change` are the commands of
the same names. How an area is read and classified is a `MapOptions`. Areas may be vector
files, shapely geometries or anything with `__geo_interface__`; scenes may be paths,
`pystac.Item`s or `Scene`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from geolulc.core.legend import Legend
from geolulc.defaults import (
    DEFAULT_COLLECTION,
    DEFAULT_MAX_AREA_KM2,
    DEFAULT_MODEL,
    EARTH_SEARCH,
    ChangeMethod,
    Composite,
    Engine,
    Precision,
    Split,
)
from geolulc.errors import DataError, MissingInputError, ParameterError
from geolulc.io.aoi import AOILike, load_aoi
from geolulc.io.bands import normalise_band
from geolulc.io.scenes import Scene, SceneLike, load_scene
from geolulc.mapping.pipeline import LandCover, MapResult, classify_request, run_map, write_landcover
from geolulc.mapping.request import MapOptions, MapRequest, check_trust
from geolulc.models.augment import PRESETS as AUGMENTATION_PRESETS
from geolulc.models.synth import SynthConfig
from geolulc.models.train import TrainConfig

if TYPE_CHECKING:
    import xarray
    from affine import Affine
    from pyproj import CRS

    from geolulc.change_detection.evaluate import ChangeScores
    from geolulc.change_detection.job import ChangeResult, ChangeSet, DatePair
    from geolulc.models.evaluate import Evaluation, PatchPrediction
    from geolulc.models.model import ModelInfo
    from geolulc.models.synth import SynthQuality
    from geolulc.models.train import TrainedModel

Scenes = SceneLike | Sequence[SceneLike]


def search(*, aoi: AOILike, date: str, catalog: str = EARTH_SEARCH,
           collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None,
           max_area_km2: float = DEFAULT_MAX_AREA_KM2, limit: int = 200) -> list[Scene]:
    """Scenes of a STAC catalogue that intersect the AOI in the period, least cloudy first.

    `date` is a day, month, year or range (2023-06, 2023-06-01/2023-06-15); at most `limit`
    items are fetched.
    """
    from geolulc.io.catalog import search_scenes

    if limit < 1:
        raise ParameterError(f"`limit` must be at least 1, not {limit}")
    area = load_aoi(aoi, max_area_km2)
    return search_scenes(area.geometry, date, catalog, collection, max_cloud, limit)


def download(*, aoi: AOILike, date: str, out_dir: str | Path, catalog: str = EARTH_SEARCH,
             collection: str = DEFAULT_COLLECTION, max_cloud: float | None = None,
             max_area_km2: float = DEFAULT_MAX_AREA_KM2, bands: Sequence[str] | None = None,
             crs: str | None = None, resolution: float = 10.0) -> Path:
    """Save the harmonised, cloud-masked band stack of an AOI as COGs with a STAC item.

    Returns the item's path; `make_map(scenes=out_dir)` then needs no network.
    """
    from geolulc.io.download import download_stack

    return download_stack(aoi, date, Path(out_dir), catalog=catalog, collection=collection,
                          max_cloud=max_cloud, max_area_km2=max_area_km2,
                          bands=list(bands) if bands else None, crs=crs, resolution=resolution)


def classify(*, scenes: Scenes | None = None, aoi: AOILike | None = None, date: str | None = None,
             model: str | Path = DEFAULT_MODEL, options: MapOptions | None = None,
             data: xarray.Dataset | xarray.DataArray | None = None,
             level: Literal["L1C", "L2A"] | None = None, baseline: str | None = None) -> LandCover:
    """Read and classify an area, in memory: nothing is written.

    Give `scenes` (from `search`, or local ones), or `aoi` and `date` to search the catalogue of
    `options`. The area is the AOI, or the first scene's extent.

    Or give `data`: Sentinel-2 bands as odc-stac or stackstac load them (an `xarray.Dataset`
    with a variable per band, B04 or red …, or a `DataArray` with a `band` dimension), with a
    CRS; a `time` dimension is one acquisition per step, combined by `options.composite` (auto:
    a median over several days). Integer values are DN as stored (reflectance × 10000), floats
    reflectance (0–1.5) or DN as their values (or a `units` attribute) tell. The map is made in
    the data's CRS, over its extent or the AOI, by the same reading as for scenes (needs the
    `xarray` extra). `level` (L1C/L2A) and `baseline` (such as "05.09": from 04.00 DN carry a
    +1000 offset, removed) are read from STAC properties among the data's coordinates or
    attributes where not given; odc-stac drops them, so give them, or put the item's
    properties in `data.attrs`. Dask-backed data are written to temporary GeoTIFFs a row of
    chunks at a time, never loaded whole.
    """
    if data is None:
        if level is not None or baseline is not None:
            raise ParameterError("`level` and `baseline` describe `data`; scenes carry their own")
        landcover = classify_request(MapRequest.of(options, aoi=aoi, date=date,
                                                    scenes=_scene_list(scenes),
                                                    model=str(model)), cache=False)
        check_trust(landcover.model)
        return landcover
    from dataclasses import replace

    from geolulc.io.xarrays import open_data
    from geolulc.models.model import auto_model, read_card, resolve_model_path

    if scenes is not None:
        raise ParameterError("give `scenes` or `data`, not both")
    source = open_data(data, level=level, baseline=baseline)
    name = auto_model(set(source.bands)) if str(model) == DEFAULT_MODEL else str(model)
    bands = read_card(resolve_model_path(name)).bands
    source.require(bands)
    chosen = options or MapOptions()
    if chosen.crs is None and source.map_crs:  # the map on the data's own pixels
        chosen = replace(chosen, crs=source.map_crs)
    if chosen.composite == "auto" and source.several_days:  # as `map` does over a period
        chosen = replace(chosen, composite="median")
    with source.scenes(bands) as local:
        return classify_request(MapRequest.of(chosen, aoi=aoi, date=date, scenes=list(local),
                                              model=name), cache=False)


def make_map(*, scenes: Scenes | None = None, aoi: AOILike | None = None, date: str | None = None,
             model: str | Path = DEFAULT_MODEL, options: MapOptions | None = None,
             out_dir: str | Path = "outputs", name: str | None = None) -> MapResult:
    """`classify` then `write`, resumably: what `geolulc map` does.

    Finished chunks are kept in `out_dir` until the map is written, so an interrupted call
    resumes; a failed run leaves the previous map of the same name in place.
    """
    return run_map(MapRequest.of(options, aoi=aoi, date=date, scenes=_scene_list(scenes),
                                 model=str(model), out_dir=Path(out_dir), name=name))


def write(landcover: LandCover, out_dir: str | Path = "outputs", *, name: str | None = None
          ) -> dict[str, str]:
    """Write a `LandCover`'s files and return {kind: path}.

    The files are the map (COG with colour table), confidence, probabilities, clear-observation
    count, statistics (JSON, CSV), QGIS style and quicklook.
    """
    if not isinstance(landcover, LandCover):
        raise ParameterError(f"`landcover` must be what geolulc.classify returns, not "
                             f"{type(landcover).__name__}")
    outputs, _ = write_landcover(landcover, _path(out_dir) or Path("outputs"), name)
    return outputs


@dataclass(frozen=True)
class Stack:
    """Harmonised, cloud-masked bands of an area on its grid."""

    dn: np.ndarray
    """uint16 (bands, rows, cols): reflectance × 10000, 0 where not clear."""
    clear: np.ndarray
    """bool (rows, cols): where a clear observation was read."""
    bands: list[str]
    crs: CRS
    transform: Affine


def read(*, scenes: Scenes, aoi: AOILike | None = None,
         bands: Sequence[str] = ("B02", "B03", "B04", "B08"), resolution: float = 10.0,
         crs: str | None = None, composite: Composite = "none", mask_dilate: int = 0,
         toa: bool = False, max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> Stack:
    """The scenes' bands over the AOI (or the first scene's extent) on the map's grid.

    The grid is the UTM zone of the centre, or `crs`; the bands are harmonised to one
    processing baseline and cloud-masked; `composite` median/best/none as in `map`; `toa`
    restores top-of-atmosphere reflectance for L2A.
    """
    from rasterio.windows import Window

    from geolulc.core.grid import choose_crs, grid_for_bounds, project_geometry
    from geolulc.io.aoi import load_aoi
    from geolulc.io.bands import normalise_band
    from geolulc.io.read import Masking, StackReader
    from geolulc.mapping.request import check_grid_fits, scene_extent_wgs84

    items = [load_scene(s) for s in _scene_list(scenes)]
    if not items:
        raise ParameterError("`scenes` must name at least one scene")
    if isinstance(bands, str) or not bands:
        raise ParameterError(f"`bands` must be a list of band names such as ['B04', 'B08'], "
                             f"not {bands!r}")
    try:
        names = [normalise_band(b) for b in bands]
    except ValueError as exc:
        raise ParameterError(f"`bands`: {exc}") from None
    MapOptions(composite=composite, mask_dilate=mask_dilate, resolution=resolution)  # checks
    region = load_aoi(aoi, max_area_km2).geometry if aoi is not None else scene_extent_wgs84(items[0])
    grid_crs = choose_crs(region, crs)
    grid = grid_for_bounds(project_geometry(region, grid_crs).bounds, grid_crs, resolution, 1, 1)
    check_grid_fits(grid, len(names))
    with StackReader(items, names, grid, Masking(composite, mask_dilate, restore_toa=toa)) as reader:
        pixels = reader.read(Window(0, 0, grid.cols, grid.rows))
    return Stack(pixels.dn, pixels.clear, names, grid.crs, grid.map_transform)


def change(*, before: str | Path | None = None, after: str | Path | None = None,
           aoi: AOILike | None = None, dates: Sequence[str] | None = None,
           model: str | Path = DEFAULT_MODEL, method: ChangeMethod = "auto",
           threshold: float | None = None, resample: bool = False,
           options: MapOptions | None = None) -> ChangeSet:
    """Change between two scenes or maps (`before`, `after`), or between `dates` over `aoi`.

    The result holds a `DatePair` (before, after, change) per consecutive pair of dates, and
    first → last for more than two. Nothing is written.
    """
    from geolulc.change_detection.job import detect_changes

    req = MapRequest.of(options, aoi=aoi, model=str(model))
    found = detect_changes(req, list(dates or []), _path(before), _path(after), threshold,
                           resample, method, write_maps=False, cache=False)
    if found.on_grid:
        check_trust(found.on_grid.model)
    return found


def write_change(pair: DatePair, out_dir: str | Path = "outputs", *, name: str = "change",
                 vector: bool = False) -> dict[str, str]:
    """Write one `DatePair` of `change` and return {kind: path}.

    The files are the from-to COG, change mask and probability, transitions CSV, summary JSON,
    side-by-side PNG and, with `vector`, the change polygons (GeoPackage).
    """
    from geolulc.change_detection.files import write_change as write_files
    from geolulc.io.atomic import safe_name

    stem = safe_name(f"{name}_{pair.before.name}_{pair.after.name}", "change")
    return write_files(Path(out_dir), stem, pair.before, pair.after, pair.change, vector)


def write_legend(raster: str | Path, legend: Legend | None = None) -> Path:
    """Give a class raster written by rioxarray or GDAL its colours and class names.

    ``ds.labels.rio.to_raster(path)`` keeps the variable's attributes as tags (`flag_meanings`,
    `flag_colors`) but cannot write a colour table; this writes the colour table into the file
    and the category names, attribute table and QGIS style (PATH.qml) beside it, from `legend`
    or else from those tags. Returns the style's path.
    """
    import rasterio
    import rasterio.errors

    from geolulc.io.rasters import write_legend as write

    path = Path(raster)
    if not path.is_file():
        raise MissingInputError(f"raster {path} does not exist")
    if legend is None:
        try:
            with rasterio.open(path) as src:
                tags, description = src.tags(), src.descriptions[0]
        except rasterio.errors.RasterioError as exc:
            raise DataError(f"cannot read raster {path}: {str(exc).splitlines()[0]}") from None
        try:
            legend = Legend.from_cf_flags(tags, description or tags.get("long_name") or "class")
        except ValueError:
            raise ParameterError(f"{path} has no flag_meanings and flag_colors tags (write it "
                                 "from a geolulc Dataset's class variable, or pass `legend`)"
                                 ) from None
    return write(path, legend)


def make_change(*, before: str | Path | None = None, after: str | Path | None = None,
                aoi: AOILike | None = None, dates: Sequence[str] | None = None,
                model: str | Path = DEFAULT_MODEL, method: ChangeMethod = "auto",
                threshold: float | None = None, resample: bool = False, vector: bool = False,
                options: MapOptions | None = None, out_dir: str | Path = "outputs",
                name: str | None = None) -> ChangeResult:
    """What `geolulc change` does: each date's map and every change between them, written.

    Resumable as `make_map` is: the dates' finished chunks are kept until the change is written.
    """
    from geolulc.change_detection.job import run_change

    req = MapRequest.of(options, aoi=aoi, model=str(model), out_dir=Path(out_dir), name=name)
    return run_change(req, list(dates or []), _path(before), _path(after), threshold, resample,
                      vector, method)


def classify_patches(patches: Sequence[str | Path], *, model: str | Path = DEFAULT_MODEL,
                     device: str = "auto", precision: Precision = "auto",
                     engine: Engine = "auto") -> list[PatchPrediction]:
    """Class probabilities of single patches (13-band GeoTIFFs, or RGB JPEG/PNG).

    `auto` takes the bundled patch classifier for the first patch's bands.
    """
    from geolulc.models.evaluate import classify_patch_files

    if isinstance(patches, (str, Path)):
        patches = [patches]
    return classify_patch_files([Path(p) for p in patches], str(model), device, precision, engine)


def train(*, data: str | Path, out_dir: str | Path, config: TrainConfig | None = None,
          bands: Sequence[str] | None = None, exclude: str | Path | None = None,
          init: str | Path | None = None, extra_train: str | Path | None = None,
          teacher: str | Path | None = None, windows: Sequence[str | Path] = (),
          synthetic: str | Path | None = None, device: str = "auto",
          resume: bool = False) -> TrainedModel:
    """Train a patch classifier on a EuroSAT-layout folder (one sub-folder per class).

    Checkpoints each epoch in `out_dir` (`resume` continues from it) and writes the model card
    and weights there; a failed run never overwrites the last good model. `init` and `teacher`
    are models (bundled names or card paths); `extra_train` patches join the training split
    only; `windows` are real-scene windows with their water share (.npz); `synthetic` is a folder
    of generated patches (`synth_sample`) that joins the training split only, never validation.
    """
    from geolulc.models.train import TrainConfig, train_folder

    return train_folder(Path(data), Path(out_dir), config or TrainConfig(),
                        bands=list(bands) if bands else None, exclude=_path(exclude),
                        init=str(init) if init else None, extra_train=_path(extra_train),
                        teacher=str(teacher) if teacher else None,
                        windows=[Path(w) for w in windows], device=device, resume=resume,
                        synthetic=_path(synthetic))


def evaluate(*, model: str | Path, data: str | Path, split: Split = "all",
             out_dir: str | Path = "outputs", device: str = "auto",
             precision: Precision = "auto", engine: Engine = "auto",
             bands: Sequence[str] | None = None) -> Evaluation:
    """Accuracy, Cohen's kappa, per-class precision/recall/F1 and the confusion matrix.

    `split="val"` scores only the patches the model's training held out (it needs the folder
    the model was trained on); `bands` keeps only those bands of the model (the others are set
    to their training mean) to measure what the rest add. The confusion matrix is written to
    `out_dir` as CSV and PNG.
    """
    from geolulc.models.evaluate import evaluate_folder

    return evaluate_folder(str(model), Path(data), split, Path(out_dir), device, precision, engine,
                           list(bands) if bands else None)


def evaluate_change(cities: Sequence[str | Path], *, model: str | Path = DEFAULT_MODEL,
                    stride: int = 64, thresholds: Sequence[float] = (),
                    methods: Sequence[ChangeMethod] = ("combined",), patch_fraction: float = 0.02,
                    out_dir: str | Path = "outputs/evaluate-change",
                    device: str = "auto") -> ChangeScores:
    """Score `change` on OSCD city folders (imgs_1, imgs_2, change-labels.tif).

    Pixel and block precision, recall and F1 per city and pooled, for each method and threshold
    (a method's own threshold where none is given).
    """
    from geolulc.change_detection.evaluate import evaluate_cities

    if not cities:
        raise ParameterError("`cities` must name at least one OSCD city folder")
    req = MapRequest(model=str(model), stride=stride, device=device, out_dir=Path(out_dir),
                     name="oscd")
    return evaluate_cities([Path(c) for c in cities], req, list(thresholds), list(methods),
                           patch_fraction)


def catalog(out_dir: str | Path, *, title: str | None = None, validate: bool = False) -> Path:
    """Write a STAC Catalog (``catalog.json``) over the maps and changes written in `out_dir`.

    Each run already writes its own STAC Item; the catalogue links them by relative href and
    gives each root and parent links back, so the folder can be moved, served or browsed (QGIS's
    STAC browser, stac-browser) as it is. `validate` then checks the catalogue and every Item
    against the STAC and extension schemas bundled with geolulc, offline, raising `DataError`
    on the first failure.
    """
    from geolulc.io.stac_items import validate_catalog, write_catalog

    path = write_catalog(_path(out_dir) or Path("outputs"), title)[0]
    if validate:
        validate_catalog(path)
    return path


def list_models() -> list[ModelInfo]:
    """The bundled models with their bands, classes, training data and measured accuracy."""
    from geolulc.models.model import bundled_model_info

    return bundled_model_info()


def synth_train(*, data: str | Path, out_dir: str | Path, config: SynthConfig | None = None,
                bands: Sequence[str] | None = None, device: str = "auto",
                resume: bool = False) -> Path:
    """Train a class-conditional patch generator on a EuroSAT-layout folder.

    Checkpoints and a sample grid PNG every epoch in `out_dir`; `resume` continues (refusing a
    checkpoint of other patches or settings). Returns the generator's card.
    """
    from geolulc.models.patchdata import load_patch_folder
    from geolulc.models.synth import SynthConfig, train_generator

    patches = load_patch_folder(Path(data), list(bands) if bands else None)
    return train_generator(patches, Path(out_dir), config or SynthConfig(), device, resume)


def synth_sample(*, model: str | Path, per_class: int, out_dir: str | Path,
                 classes: Sequence[str] | None = None, seed: int = 0) -> list[Path]:
    """Write `per_class` generated patches of each class (all, or `classes`), marked synthetic.

    They are written in the EuroSAT layout, so `train(synthetic=...)` adds them to a training set.
    """
    from geolulc.models.synth import generate, load_generator, write_samples

    if per_class < 1:
        raise ParameterError(f"`per_class` must be at least 1, not {per_class}")
    gen, card = load_generator(Path(model))
    x, y = generate(gen, card, list(classes) if classes else card.classes, per_class, seed)
    return write_samples(x, y, card, Path(out_dir))


def synth_quality(*, model: str | Path, data: str | Path, classifier: str = "auto",
                  per_class: int = 64) -> SynthQuality:
    """How good a generator's patches are, judged by a bundled patch classifier.

    Fréchet distance in the classifier's feature space, per-class precision/recall of the
    generated patches as it judges them, a nearest-neighbour memorisation check and the
    patches' diversity within each class (mode collapse).
    """
    from geolulc.models.model import auto_model
    from geolulc.models.patchdata import load_patch_folder
    from geolulc.models.synth import judge, load_generator

    gen, card = load_generator(Path(model))
    real = load_patch_folder(Path(data), card.bands, classes=card.classes)
    name = auto_model(set(card.bands), patches=True) if classifier == "auto" else classifier
    return judge(gen, card, real, name, per_class)


def _scene_list(scenes: Scenes | None) -> list[SceneLike]:
    """`scenes` as a list: one path or item is one scene, not the characters of its path."""
    if scenes is None:
        return []
    if isinstance(scenes, (str, Path, Scene, dict)) or hasattr(scenes, "to_dict"):
        return [cast("SceneLike", scenes)]  # a pystac.Item: `hasattr` does not narrow the type
    if not isinstance(scenes, Sequence):
        raise ParameterError(f"`scenes` must be a path, an item or a list of them, not "
                             f"{type(scenes).__name__}")
    return list(scenes)


def _path(value: str | Path | None) -> Path | None:
    """A path argument, checked for being a path at all."""
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise ParameterError(f"expected a path, not {type(value).__name__}")
    if not str(value):
        raise MissingInputError("an empty path was given")
    return Path(value)


__all__ = ["MapOptions", "Stack", "catalog", "change", "classify", "classify_patches", "download",
           "evaluate", "evaluate_change", "list_models", "make_change", "make_map", "read", "search",
           "synth_quality", "synth_sample", "synth_train", "train", "write", "write_change",
           "write_legend", "Legend",
           # what the CLI builds its calls from
           "AUGMENTATION_PRESETS", "SynthConfig", "TrainConfig", "load_aoi", "normalise_band"]
