"""A whole-grid array kept in a raw file and written row band by row band.

A whole tile's class probabilities are 1.1 GB (a composite's sums 2.2 GB). Held in memory they
set a map's peak memory; written into a file with `pwrite` they sit in the operating system's
page cache, which is not the process's memory, and a row band is read back with `pread`. Only
`array()` maps the file, for a writer that needs the whole stack at once (GDAL's COG copy
reads it where it lies); `release` hands the mapped pages back once that is done.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

import numpy as np


class RowStore:
    """A (rows, cols[, bands]) array of one dtype in a raw file, row-major, zeros at first.

    The file is opened once and kept open, so the store stays whole even if its folder is
    removed meanwhile (another identical run finishing); it is closed with the store.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type,
                 temporary: bool = False) -> None:
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if temporary:  # a file without a name: gone with the store, even after a kill
            fd, name = tempfile.mkstemp(prefix=".geolulc-", dir=self.path.parent)
            os.unlink(name)
            self._fd = fd
        else:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        size = self.row_bytes * shape[0]
        if os.fstat(self._fd).st_size != size:  # a new (sparse, all-zero) file, or resized
            os.ftruncate(self._fd, size)
        self._mapped: np.memmap | None = None

    def write(self, row0: int, block: np.ndarray) -> None:
        """Put `block` (rows, *shape[1:]) at row `row0`."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or row0 + len(block) > self.shape[0]:
            raise ValueError(f"a block {block.shape} at row {row0} does not fit {self.shape}")
        data, offset = block.reshape(-1).view(np.uint8).data, row0 * self.row_bytes
        while data:  # pwrite may write less than asked
            done = os.pwrite(self._fd, data, offset)
            data, offset = data[done:], offset + done

    def read(self, row0: int, n_rows: int) -> np.ndarray:
        """Rows `row0` … `row0 + n_rows` as a new array."""
        n_rows = max(0, min(n_rows, self.shape[0] - row0))
        out = np.empty((n_rows, *self.shape[1:]), dtype=self.dtype)
        view, offset = out.reshape(-1).view(np.uint8).data, row0 * self.row_bytes
        while view:
            done = _pread_into(self._fd, view, offset)
            if done == 0:
                raise OSError(f"{self.path} ends before row {row0 + n_rows}")
            view, offset = view[done:], offset + done
        return out

    def array(self) -> np.ndarray:
        """The whole array, mapped from the file (writable).

        Pages come in as they are read and stay until `release` hands them back.
        """
        if self._mapped is None:
            with os.fdopen(os.dup(self._fd), "r+b") as fh:
                self._mapped = np.memmap(fh, dtype=self.dtype, mode="r+", shape=self.shape)
        return self._mapped

    def close(self) -> None:
        """Close the file (a mapping from `array()` stays valid until it is dropped)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read into `view` at `offset`: bytes read (preadv where the platform has it)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _whole_mapping(array: np.ndarray) -> mmap.mmap | None:
    """The shared file mapping `array` is the whole of (np.memmap itself, not a view of it)."""
    if (hasattr(mmap, "MADV_DONTNEED") and isinstance(array, np.memmap)
            and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous
            and array.mode in ("r", "r+", "w+")):
        return array.base
    return None


def rows_of(array: np.ndarray, rows: slice) -> np.ndarray:
    """A copy of `rows` of a whole-grid array; from a file mapping, its pages handed back after.

    Reading a mapped array row block by row block would otherwise leave every page read in the
    process's memory: a whole tile's probabilities, 1.1 GB, by the end of one pass.
    """
    out = np.array(array[rows])
    mapping = _whole_mapping(array)
    if mapping is not None and out.size:
        start, stop, _ = rows.indices(array.shape[0])
        head = getattr(array, "offset", 0) % mmap.ALLOCATIONGRANULARITY  # its start in the mapping
        first = (head + start * array.strides[0]) // mmap.PAGESIZE * mmap.PAGESIZE
        mapping.madvise(mmap.MADV_DONTNEED, first, head + stop * array.strides[0] - first)
    return out


def release(array: np.ndarray) -> None:
    """Hand back the pages of a file mapping read so far (the file keeps them); else nothing.

    No flush: the pages of a shared mapping, written or not, stay in the page cache.
    """
    mapping = _whole_mapping(array)
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)
