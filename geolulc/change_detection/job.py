"""The `geolulc change` job: land cover of several dates on one grid, then their differences."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geolulc.change_detection.detect import Change, DateMap, compare
from geolulc.change_detection.files import check_comparable, read_map, write_change
from geolulc.change_detection.spectral import SPECTRAL_BANDS, check_levels, spectral_change
from geolulc.core.device import resolve_device
from geolulc.defaults import PROBABILITY_COMPOSITES
from geolulc.errors import FallbackWarning, GeolulcError, NoDataError, ParameterError, SceneError
from geolulc.io.aoi import AOI, load_aoi
from geolulc.io.atomic import safe_name
from geolulc.io.catalog import parse_date_range
from geolulc.io.rasters import NODATA
from geolulc.io.scenes import Scene, load_scene
from geolulc.mapping.outputs import write_map
from geolulc.mapping.pipeline import DateInput, OnGrid, classify_on_grid
from geolulc.mapping.request import (
    MapRequest,
    check_trust,
    find_scenes,
    model_for,
)
from geolulc.models.model import Model, load_model

if TYPE_CHECKING:
    import torch
    import xarray

log = logging.getLogger(__name__)


def _is_map(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".tif", ".tiff")


@dataclass
class DatesOnGrid:
    """Every date's land cover on one grid, with what the spectral comparison needs."""

    maps: list[DateMap]
    on_grid: OnGrid
    model: Model

    def clear_caches(self) -> None:
        """Remove the chunk caches once the change is written (or not wanted)."""
        self.on_grid.clear_caches()

    def spectral(self, i: int, j: int) -> np.ndarray:
        """Spectral change from date i to date j on the grid (`geolulc.change_detection.spectral`)."""
        on = self.on_grid
        return spectral_change(on.inputs[i].scenes, on.inputs[j].scenes, on.grid,
                               (on.maskings[i], on.maskings[j]), on.chunk_rows, on.inside)


def classify_dates(req: MapRequest, model: Model, aoi: AOI | None, inputs: list[DateInput],
                   device: torch.device, write: bool = True, cache: bool = True) -> DatesOnGrid:
    """Classify each date's scenes on one grid as `map` does (`classify_on_grid`).

    With `write`, each date's map is written too.
    """
    on = classify_on_grid(req, model, aoi, inputs, device, cache)
    maps = []
    for date, result in zip(inputs, on.results):
        if write:
            write_map(req.out_dir, safe_name(f"{req.name}_{date.label}"), result, model,
                      date.scenes, date.label)
        maps.append(DateMap(date.label, result.labels, result.probabilities, on.grid.crs,
                            on.grid.map_transform, model.name, model.classes, model.colors))
    return DatesOnGrid(maps, on, model)


def compare_dates(dates: DatesOnGrid, i: int, j: int, threshold: float | None,
                  method: str) -> Change:
    """Change from date i to date j.

    `combined` reads both dates' reflectance for the spectral score (see
    `geolulc.change_detection.spectral`); the land-cover-only methods use the maps alone.
    """
    spectral = dates.spectral(i, j) if method == "combined" else None
    return compare(dates.maps[i], dates.maps[j], threshold, method, spectral)


def require_overlap(change: Change, before: DateMap, after: DateMap) -> None:
    """Fail when two dates share no clear pixel, rather than report an empty change."""
    if not (change.mask != NODATA).any():
        raise NoDataError(f"{before.name} and {after.name} have no clear pixel in common: "
                           "there is nothing to compare")


def resolve_method(method: str, scenes: list[Scene] | None) -> str:
    """The change method to use, checked before any work starts.

    `auto`: combined where the scenes (with the spectral bands) are at hand, tv for maps.
    """
    if scenes is None:
        if method == "combined":
            raise ParameterError("`method='combined'` needs scenes (maps carry no reflectance): "
                               "give `before`/`after` scenes or `dates`, or use `method='tv'`")
        return "tv" if method == "auto" else method
    lacking = sorted({b for s in scenes for b in SPECTRAL_BANDS if b not in s.bands})
    if lacking and method in ("auto", "combined"):
        message = (f"the scenes lack band(s) {', '.join(lacking)} of the spectral change "
                   f"({' '.join(SPECTRAL_BANDS)})")
        if method == "combined":
            raise SceneError(message)
        warnings.warn(f"{message}: change from the land cover only (`method='tv'`)",
                      FallbackWarning, stacklevel=2)
        return "tv"
    if method == "auto":
        method = "combined"
    if method == "combined":
        check_levels(scenes)
    return method


@dataclass
class DatePair:
    """The change from one date to another, with both dates' maps."""

    before: DateMap
    after: DateMap
    change: Change

    def to_xarray(self) -> xarray.Dataset:
        """The change as an `xarray.Dataset` that rioxarray reads (needs the `xarray` extra).

        Both dates' labels, the from-to classes, the change mask (uint8, 255 = no data) and the
        change probability (float32, NaN = no data) on the common grid; the classes, their
        colours, the model, the dates, the method and its threshold as attributes.
        """
        from geolulc.io.xarrays import change_dataset

        a, b, change = self.before, self.after, self.change
        return change_dataset(
            before=a.labels, after=b.labels, fromto=change.fromto, mask=change.mask,
            probability=change.probability, classes=a.classes, colors=a.colors, crs=a.crs,
            transform=a.transform,
            attrs={"model": a.model, "before": a.name, "after": b.name, "method": change.method,
                   "threshold": change.threshold})


@dataclass
class ChangeSet:
    """Every compared pair of a change job, and the chunk caches that let it resume.

    The pairs are consecutive dates, and first → last for more than two; the caches let an
    interrupted job resume until it is written.
    """

    pairs: list[DatePair]
    dates: list[str]
    model: str
    name: str  # stem of the output files: the request's name, the AOI's, or "change"
    on_grid: DatesOnGrid | None = None

    def clear_caches(self) -> None:
        """Remove the dates' chunk caches once the change is written."""
        if self.on_grid:
            self.on_grid.clear_caches()


def _search(req: MapRequest, date: str, aoi: AOI | None) -> list[Scene]:
    try:
        return find_scenes(dataclasses.replace(req, date=date), aoi.geometry if aoi else None)
    except GeolulcError as exc:  # the same kind of error, saying which date it is about
        exc.args = (f"date {date}: {exc}", *exc.args[1:])
        raise


def detect_changes(
    req: MapRequest, dates: list[str], before: Path | None, after: Path | None,
    threshold: float | None = None, resample: bool = False, method: str = "auto",
    write_maps: bool = True, cache: bool = True,
) -> ChangeSet:
    """Classify every date on one grid and compare consecutive dates and first → last.

    Each date's map is written with `write_maps`; nothing of the change itself is written.
    """
    if dates and (before or after):
        raise ParameterError("give either `dates` or `before`/`after`, not both")
    if req.composite in PROBABILITY_COMPOSITES:
        raise ParameterError(f"`composite` {req.composite} composites one map's acquisitions "
                             "(`make_map`); the dates of a change are composited by reflectance: "
                             "median, best or none")
    if dates:
        if len(dates) < 2:
            raise ParameterError("change detection needs at least two dates")
        if req.aoi is None:
            raise ParameterError("`dates` needs `aoi`")
        for date in dates:
            parse_date_range(date)
    elif not (before and after):
        raise ParameterError("give `aoi` with `dates` D1 D2 [...], or `before` and `after`")
    aoi = load_aoi(req.aoi, req.max_area_km2) if req.aoi is not None else None
    name = safe_name(req.name or (aoi.name if aoi else "change"))
    req = dataclasses.replace(req, name=name)
    on_grid = None
    if before and after and _is_map(before) and _is_map(after):
        method = resolve_method(method, None)
        first = read_map(before)
        maps = [first, check_comparable(first, read_map(after), resample)]
    else:
        if before and after and (_is_map(before) or _is_map(after)):
            scene = after if _is_map(before) else before
            load_scene(scene)  # not a scene either: its own one-line error says what it is not
            raise ParameterError(f"{before} and {after} must both be land-cover maps or both be "
                               f"scenes; {scene} is a scene")
        device = resolve_device(req.device)
        inputs = ([DateInput("before", [load_scene(before)]),
                   DateInput("after", [load_scene(after)])] if before and after
                  else [DateInput(date, _search(req, date, aoi), searched=True)
                        for date in dates])
        scenes = [s for date in inputs for s in date.scenes]
        method = resolve_method(method, scenes)
        model = load_model(model_for(req.model, scenes), device)
        on_grid = classify_dates(req, model, aoi, inputs, device, write_maps, cache)
        maps = on_grid.maps
    pairs = [(i, i + 1) for i in range(len(maps) - 1)]
    if len(maps) > 2:
        pairs.append((0, len(maps) - 1))
    found = []
    for i, j in pairs:
        change = (compare_dates(on_grid, i, j, threshold, method) if on_grid
                  else compare(maps[i], maps[j], threshold, method))
        require_overlap(change, maps[i], maps[j])
        found.append(DatePair(maps[i], maps[j], change))
    return ChangeSet(found, [m.name for m in maps], maps[0].model, name, on_grid)


def _map_item(out_dir: Path, name: str, date: DateMap, given: Path | None) -> str | None:
    """The href of the STAC Item of a date's map, or None when there is none.

    That is the Item this run wrote, or the one beside a map given as input.
    """
    written = out_dir / f"{safe_name(f'{name}_{date.name}')}.json"
    if written.is_file():
        return f"./{written.name}"
    beside = given.parent / f"{date.name}.json" if given is not None and _is_map(given) else None
    return beside.resolve().as_uri() if beside is not None and beside.is_file() else None


@dataclass(frozen=True)
class PairResult:
    """One written change between two dates."""

    before: str
    after: str
    method: str
    threshold: float
    outputs: dict[str, str]
    """{kind: path} of the change's files."""
    changed_cells: int
    valid_cells: int
    """Cells both dates classified (the changed share is changed_cells / valid_cells)."""


@dataclass(frozen=True)
class ChangeResult:
    """What a change run wrote (`geolulc change --json` prints `to_dict()`)."""

    dates: list[str]
    model: str
    changes: list[PairResult]

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return dataclasses.asdict(self)


def run_change(
    req: MapRequest, dates: list[str], before: Path | None, after: Path | None,
    threshold: float | None = None, resample: bool = False, vector: bool = False,
    method: str = "auto",
) -> ChangeResult:
    """`geolulc change`: maps of every date, the changes between them, all written."""
    found = detect_changes(req, dates, before, after, threshold, resample, method)
    inputs = found.on_grid.on_grid.inputs if found.on_grid else []
    acquired = {d.label: [s.datetime for s in d.scenes if s.datetime] for d in inputs}
    results = []
    for pair in found.pairs:
        a, b, change = pair.before, pair.after, pair.change
        sources = [_map_item(Path(req.out_dir), found.name, d, given)
                   for d, given in ((a, before), (b, after))]
        outputs = write_change(req.out_dir, safe_name(f"{found.name}_{a.name}_{b.name}"), a, b,
                               change, vector, [s for s in sources if s],
                               acquired.get(a.name, []) + acquired.get(b.name, []))
        results.append(PairResult(a.name, b.name, change.method, change.threshold, outputs,
                                  int((change.mask == 1).sum()), int((change.mask != NODATA).sum())))
    found.clear_caches()
    if found.on_grid:  # once everything is written: a failed run shows its error alone
        check_trust(found.on_grid.model)
    return ChangeResult(found.dates, found.model, results)
