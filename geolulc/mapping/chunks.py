"""Chunked classification of a grid: the unit of streaming, of resuming and of distribution.

A chunk is a band of `chunk_rows` map rows. It is read with enough context above and below that
its masks and the fill of its unclear pixels are those of the whole grid (`ChunkJob.context`),
so a map is the same pixel for pixel however it is cut. Each finished chunk is kept in a cache folder keyed
by everything that determines its result (scenes, bands, model weights, grid, masking), so an
interrupted run resumes where it stopped and a map never mixes chunks of different inputs or
models. Chunks run in this process (reading the next while classifying the current one) or on a
Dask cluster, with the same code, so both give the same map.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from rasterio.windows import Window

from geolulc.core.grid import PatchGrid
from geolulc.core.labels import choose_labels
from geolulc.core.windows import fill_unclear
from geolulc.errors import ModelError
from geolulc.io.atomic import atomic_path
from geolulc.io.rasters import NODATA, PROB_SCALE
from geolulc.io.read import Masking, Pixels, StackReader
from geolulc.io.rowstore import RowStore
from geolulc.io.scenes import Scene
from geolulc.mapping.dense import dense_probabilities
from geolulc.mapping.patches import clear_cells, cut_patches
from geolulc.models.inference import Classifier
from geolulc.models.model import Model
from geolulc.models.tiles import TILE, tile_probabilities, tile_size

if TYPE_CHECKING:  # an optional dependency (the `dask` extra)
    from distributed import Client

log = logging.getLogger(__name__)

T = TypeVar("T")


def chunk_window(grid: PatchGrid, chunk_rows: int, row0: int, context: int = 0) -> Window:
    """Read window of the chunk of `chunk_rows` map rows starting at map row `row0`.

    The window holds its cells' pixels and the grid's margin of context on every side, and
    `context` more rows above and below where the read grid has them.
    """
    n_rows = min(chunk_rows, grid.rows - row0)
    top = max(row0 * grid.stride - context, 0)
    bottom = min((row0 + n_rows) * grid.stride + 2 * grid.margin + context, grid.read_shape[0])
    return Window(0, top, grid.read_shape[1], bottom - top)


def context_rows(grid: PatchGrid, chunk_rows: int, row0: int, context: int) -> tuple[int, int]:
    """Rows of context above and below a chunk's own window in its read window.

    `context` rows are asked, fewer at the grid's edges; they are cut off once the chunk is
    masked and filled.
    """
    read = chunk_window(grid, chunk_rows, row0, context)
    own = chunk_window(grid, chunk_rows, row0)
    return (int(own.row_off - read.row_off),
            int(read.row_off + read.height - own.row_off - own.height))


@dataclass
class ChunkJob:
    """Everything a chunk needs; picklable, so it can travel to Dask workers."""

    scenes: list[Scene]
    bands: list[str]
    grid: PatchGrid
    inside: np.ndarray
    min_clear: float
    dense: bool
    chunk_rows: int
    masking: Masking
    #: Each scene's L1C cloud mask of the whole grid (`StackReader.cloud_blocks`), made once
    #: (`with_cloud_masks`) and carried to every chunk; empty: each reader makes its own.
    cloud_blocks: list[np.ndarray | None] = field(default_factory=list)

    @property
    def context(self) -> int:
        """Rows read above and below a chunk's window so that its pixels are the whole grid's.

        The fill of an unclear pixel reaches its nearest clear pixel (at most `grid.reach`
        away for any pixel a labelled cell sees) and the surface beyond it, mirrored: twice
        that. The fill needs the masks exact over those rows, which takes the dilation's width
        more, and with the "best" composite the whole patch of each cell there.
        """
        best = self.grid.patch if self.masking.composite == "best" else 0
        rows = 2 * self.grid.reach + self.masking.dilate + best
        return -(-rows // self.align) * self.align

    @property
    def align(self) -> int:
        """Rows whose multiples keep windows on the cells' grid and a patch network's phase."""
        return math.lcm(self.grid.stride, self.grid.patch)

    def window(self, row0: int) -> Window:
        """Read window of the chunk starting at map row `row0`, with its context rows."""
        return chunk_window(self.grid, self.chunk_rows, row0, self.context)

    def read(self, reader: StackReader, row0: int) -> Pixels:
        """The pixels of the chunk at map row `row0`, unclear ones filled (`classify_chunk`).

        Pixels without a clear view (cloud, no data beyond a scene edge) take the value of the
        nearest clear pixel, so a window that runs off the data sees the real surface it touches,
        never a constant that the network could read as water. Filled here, in the reading
        thread beside inference, rather than before classification.
        """
        pixels = reader.read(self.window(row0))
        fill_unclear(pixels.dn, pixels.clear, inplace=True, reach=self.grid.reach)  # no copy
        return pixels

    def with_cloud_masks(self) -> None:
        """Make the scenes' cloud masks of the whole grid once, for every chunk and worker."""
        with self.reader() as reader:
            self.cloud_blocks = list(reader.cloud_blocks or [])

    def reader(self) -> StackReader:
        """A reader of the job's scenes with the cloud masks the job carries."""
        return StackReader(self.scenes, self.bands, self.grid, self.masking, self.cloud_blocks)

    @property
    def starts(self) -> list[int]:
        """First map row of every chunk of the grid, in order."""
        return list(range(0, self.grid.rows, self.chunk_rows))


@dataclass
class ChunkResult:
    """One chunk of the map: its rows of labels and probabilities, and what was read."""

    row0: int
    labels: np.ndarray  # uint8 (rows, cols), NODATA where not classified
    probs: np.ndarray  # uint8 (rows, cols, classes): probability × PROB_SCALE
    masked: int
    count: np.ndarray  # uint8 clear observations of the chunk's cell rows at input resolution
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cells(self) -> int:
        """Cells of the chunk that were classified (not NODATA), for the progress and the totals."""
        return int(np.count_nonzero(self.labels != NODATA))


def _store(labels: np.ndarray, probs: np.ndarray, where: np.ndarray | tuple[np.ndarray, np.ndarray],
           p: np.ndarray, groups: list[list[int]] | None) -> None:
    """Labels and quantised probabilities of the classified cells.

    Non-finite probabilities (a broken model or input) are an error, never a map.
    """
    if not np.isfinite(p).all():
        raise ModelError("the model produced non-finite probabilities: its weights or the "
                           "input are corrupt; no map was written")
    labels[where] = choose_labels(p, groups)
    probs[where] = np.round(p * PROB_SCALE).astype(np.uint8)


def classify_chunk(job: ChunkJob, row0: int, pixels: Pixels, model: Model,
                   classifier: Classifier) -> ChunkResult:
    """Cells of one chunk that are clear enough and inside the AOI, with their probabilities.

    `pixels` come from `ChunkJob.read` (unclear ones filled). A per-pixel model labels the clear
    pixels only; a patch classifier labels cells whose patch is clear enough (`min_clear`).
    """
    grid = job.grid
    m = grid.margin
    n_rows = min(job.chunk_rows, grid.rows - row0)
    labels = np.full((n_rows, grid.cols), NODATA, dtype=np.uint8)
    probs = np.zeros((n_rows, grid.cols, len(model.classes)), dtype=np.uint8)
    t1 = time.perf_counter()
    top, bottom = context_rows(grid, job.chunk_rows, row0, job.context)
    # a dense run sees two `align`s (two patches, for strides that divide them) of real pixels
    # beyond the chunk's windows, so windows at its edges see what they see in any chunking
    seen = 2 * job.align
    seen_top = min(top, seen)
    context_dn = pixels.dn[:, top - seen_top:pixels.dn.shape[1] - bottom + min(bottom, seen)]
    pixels = pixels.crop(top, bottom, 0, 0)
    dn, clear = pixels.dn, pixels.clear
    cells = pixels.crop(m, m, m, m)
    count = cells.count
    if model.kind == "segmenter":
        valid = clear[m:clear.shape[0] - m, m:clear.shape[1] - m] & job.inside[row0:row0 + n_rows]
        t2 = time.perf_counter()
        tile = (job.chunk_rows, tile_size(grid.cols, TILE[1]))

        def has_valid(r: int, c: int) -> bool:
            return bool(valid[r:r + tile[0], c:c + tile[1]].any())

        for r, c, p in tile_probabilities(dn, classifier.probabilities, tile, m,
                                          classifier.batch_size, needed=has_valid):
            h, w = p.shape[1:]
            where = valid[r:r + h, c:c + w]
            _store(labels[r:r + h, c:c + w], probs[r:r + h, c:c + w], where,
                   np.moveaxis(p, 0, -1)[where], model.card.label_groups)
    else:
        if job.dense:
            rows, cols = clear_cells(clear, grid.patch, grid.stride, job.min_clear)
        else:
            cut = cut_patches(dn, clear, grid.patch, grid.stride, 0, job.min_clear)
            rows, cols = cut.rows, cut.cols
        keep = job.inside[rows + row0, cols]
        rows, cols = rows[keep], cols[keep]
        t2 = time.perf_counter()
        if len(rows):
            p = (dense_probabilities(model, context_dn, grid.stride, classifier)[
                     rows + seen_top // grid.stride, cols] if job.dense
                 else classifier.probabilities(cut.pixels[keep]))
            _store(labels, probs, (rows, cols), p, model.card.label_groups)
    return ChunkResult(row0, labels, probs, cells.masked, np.ascontiguousarray(count),
                       {"patch": t2 - t1, "classify": time.perf_counter() - t2})


def job_key(job: ChunkJob, model: Model) -> str:
    """Digest of every input that determines the chunks' results."""
    parts = {
        "scenes": [[s.id, sorted(s.bands.items()), s.scl, s.offset] for s in job.scenes],
        "bands": job.bands, "model": model.digest,
        "grid": [job.grid.crs.to_wkt(), job.grid.resolution, job.grid.x0, job.grid.y0,
                 job.grid.rows, job.grid.cols, job.grid.patch, job.grid.stride],
        "inside": hashlib.sha256(np.packbits(job.inside).tobytes()).hexdigest(),
        "halo": job.grid.halo, "fill": "nearest-clear-mirrored", "context": job.context,
        "min_clear": job.min_clear, "dense": job.dense, "chunk_rows": job.chunk_rows,
        "masking": [job.masking.composite, job.masking.dilate, job.masking.detect_l1c,
                    job.masking.restore_toa],
        "cache": 2,  # probabilities in one raw file, not in each chunk's
    }
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


#: Folder of an output folder that holds the chunk caches (and a composite's nameless files).
CACHE_FOLDER = ".geolulc-cache"
#: Caches of interrupted runs that were not resumed are removed after this many days.
CACHE_MAX_AGE_DAYS = 7


class ChunkCache:
    """Finished chunks of one job on disk, so an interrupted run resumes where it stopped.

    Each chunk's labels and counts go into a small compressed file written atomically, its
    probabilities into one raw file of the whole grid (`RowStore`): compressing a tile's 1.1 GB
    of probabilities took a tenth of the map's time, and the raw file is where a map's
    probabilities stay until they are written (`probabilities()`), instead of memory. The
    small file holds a checksum of the chunk's probabilities, so a chunk whose probabilities
    were not written whole (a kill, or a failed COG copy that was putting no-data in) is
    computed again. Caches of other jobs untouched for CACHE_MAX_AGE_DAYS are removed when a
    new one starts.
    """

    def __init__(self, root: Path, key: str, shape: tuple[int, int, int]) -> None:
        self.dir = Path(root) / CACHE_FOLDER / key
        cutoff = time.time() - CACHE_MAX_AGE_DAYS * 86400
        for other in self.dir.parent.glob("*") if self.dir.parent.is_dir() else []:
            if other != self.dir and other.stat().st_mtime < cutoff:
                log.info("removing the stale chunk cache %s", other)
                shutil.rmtree(other, ignore_errors=True)
        self.shape = shape
        self._store: RowStore | None = None

    @property
    def store(self) -> RowStore:
        """The raw file of the probabilities, made when it is first used.

        A run that fails before its first chunk leaves no cache behind.
        """
        if self._store is None:
            self._store = RowStore(self.dir / "probabilities.u8", self.shape, np.uint8)
        return self._store

    def _path(self, row0: int) -> Path:
        return self.dir / f"chunk-{row0:06d}.npz"

    def get(self, row0: int) -> ChunkResult | None:
        """A finished chunk, or None to compute it.

        An unreadable chunk (truncated by a kill or a full disk, or probabilities that do not
        match their checksum) is removed with a warning and computed again, never a wedge.
        """
        path = self._path(row0)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                labels, crc = data["labels"], int(data["probs_crc32"])
                probs = self.store.read(row0, len(labels))
                if zlib.crc32(probs.data) != crc:
                    # a run killed while its COG copy had put no-data into the unclassified
                    # cells, whose probabilities are 0: put them back, then check again
                    probs[labels == NODATA] = 0
                    if zlib.crc32(probs.data) != crc:
                        raise ValueError("its probabilities do not match their checksum")
                    self.store.write(row0, probs)
                return ChunkResult(row0, labels, probs, int(data["masked"]), data["count"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"cached chunk {path.name} is unreadable ({type(exc).__name__}: "
                          f"{str(exc)[:120]}); it is computed again", RuntimeWarning,
                          stacklevel=2)
            path.unlink(missing_ok=True)
            return None

    def put(self, result: ChunkResult) -> None:
        """Keep a finished chunk, atomically, so a killed run never leaves half a chunk to resume from.

        The probabilities go first, then the file that says the chunk is done. An identical
        run into the same folder shares the cache and removes it when it finishes: a chunk
        whose folder vanished while it was written is written again, once (the probabilities
        are safe in the store's open file).
        """
        self.store.write(result.row0, result.probs)
        crc = zlib.crc32(np.ascontiguousarray(result.probs).data)
        for attempt in (1, 2):
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                with atomic_path(self._path(result.row0)) as tmp, open(tmp, "wb") as fh:
                    np.savez_compressed(fh, labels=result.labels, masked=result.masked,
                                        count=result.count, probs_crc32=crc)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def probabilities(self) -> np.ndarray:
        """The probabilities of every chunk put, (rows, cols, classes), mapped from the file."""
        return self.store.array()

    def clear(self) -> None:
        """Remove the job's cache (and the cache folder once no other job's is left in it).

        What `probabilities()` returned stays readable: the file goes once it is dropped.
        """
        if self._store is not None:
            self._store.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        parent = self.dir.parent
        with contextlib.suppress(OSError):  # another run's cache may appear there meanwhile
            if not any(parent.iterdir()):
                parent.rmdir()


def read_ahead(read: Callable[[int], T], starts: Sequence[int]
               ) -> Generator[tuple[int, T], None, None]:
    """`(start, read(start))` for each start in order, the next one read in a thread meanwhile.

    Reading and the caller's work overlap because GDAL, numpy and the inference engines release
    the GIL. Close the iterator (`contextlib.closing`) before what `read` uses: that waits for a
    read still in flight.
    """
    if not starts:
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, starts[0])
        for i, start in enumerate(starts):
            value = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(read, starts[i + 1])
            yield start, value


def run_local(job: ChunkJob, starts: list[int], model: Model,
              classifier: Classifier) -> Iterator[ChunkResult]:
    """Chunks in this process; the next chunk is read while the current one is classified."""

    def read(row0: int) -> tuple[Pixels, float]:
        t0 = time.perf_counter()
        return job.read(reader, row0), time.perf_counter() - t0

    with job.reader() as reader, contextlib.closing(read_ahead(read, starts)) as chunks:
        for row0, (pixels, read_s) in chunks:
            result = classify_chunk(job, row0, pixels, model, classifier)
            result.timings["read"] = read_s
            yield result


_WORKER_MODELS: dict[tuple[str, str, str, str], tuple[Model, Classifier]] = {}


def _worker_chunk(job: ChunkJob, row0: int, payload: tuple[bytes, bytes], digest: str,
                  device: str, batch_size: int | None, precision: str, engine: str
                  ) -> ChunkResult:
    """One chunk on a Dask worker.

    The model travels as the bytes of its card and weights (checked against their digests on
    arrival), so workers need none of the client's files; it is built once per worker process.
    """
    from geolulc.core.device import resolve_device
    from geolulc.models.model import model_from_bytes

    key = (digest, device, precision, engine)
    if key not in _WORKER_MODELS:
        dev = resolve_device(device)
        model = model_from_bytes(*payload, dev)
        if model.digest != digest:
            raise ModelError("the model bytes changed on the way to the worker")
        _WORKER_MODELS[key] = (model, Classifier(model, dev, batch_size, precision, engine))
    model, classifier = _WORKER_MODELS[key]
    t0 = time.perf_counter()
    with job.reader() as reader:
        pixels = job.read(reader, row0)
    read_s = time.perf_counter() - t0
    result = classify_chunk(job, row0, pixels, model, classifier)
    result.timings["read"] = read_s
    return result


def run_dask(job: ChunkJob, starts: list[int], model: Model, client: Client, device: str,
             batch_size: int | None, precision: str, engine: str) -> Iterator[ChunkResult]:
    """Chunks as tasks on a dask.distributed cluster, yielded as they finish."""
    from distributed import as_completed

    job_future = client.scatter(job, broadcast=True)
    payload = client.scatter(model.payload, broadcast=True)
    futures = [client.submit(_worker_chunk, job_future, row0, payload, model.digest, device,
                             batch_size, precision, engine,
                             key=f"geolulc-chunk-{row0}-{id(job)}",
                             pure=False)
               for row0 in starts]
    for future in as_completed(futures):
        yield future.result()
