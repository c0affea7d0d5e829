"""Atomic file output: write beside the target, then rename, so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from geolulc.errors import ParameterError

_UMASK = os.umask(0)
os.umask(_UMASK)
_UNSAFE = re.compile(r"[^\w.-]+")  # \w: letters and digits of every script, and '_'


def make_ordinary(path: Path) -> None:
    """Give a file the permissions of an ordinary new file (0666 less the umask)."""
    path.chmod(0o666 & ~_UMASK)


def safe_name(text: str, fallback: str = "output") -> str:
    """A file-name stem from text that came from a file, an item or a card.

    Letters and digits of any script, '.', '_' and '-' only, no leading dot, so '../x' or
    '/etc/passwd' never becomes a path, and 'é' and '東京' stay two names.
    """
    name = _UNSAFE.sub("_", str(text)).lstrip("._-")[:120]
    return name or fallback


def check_readable(path: Path, what: str) -> Path:
    """`path` when it is a regular file or a folder; a named pipe or a device is refused.

    Opening a pipe blocks until something writes to it, for ever: refused before any open.
    """
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ParameterError(f"{what} {path} is not a regular file or folder (a pipe, socket or "
                             "device): give a file")
    return path


def check_file_name(name: str, what: str = "`name`") -> str:
    """`name` itself when it is a plain file-name stem (`safe_name`), else a one-line error.

    For names a user gives to outputs written under an output folder: a name with folders in
    it ('../x', '/abs/path') would write elsewhere, so it is refused rather than changed.
    """
    if not isinstance(name, str) or not name or safe_name(name, "") != name:
        raise ParameterError(f"{what} must be a plain file name (letters, digits, '.', '_', "
                             f"'-'; no folders), not {name!r}")
    return name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Written into a staging folder once every output in it is complete, before the first move:
#: its presence means the set is to be published whole.
JOURNAL = ".publish"


def remove_stale_staging(out_dir: Path) -> None:
    """Repair what runs killed while writing left behind (their process is gone).

    A set that was being moved into place is moved the rest of the way (its journal says it was
    complete), so a reader never keeps a mixed set; an unfinished one is removed.
    """
    for folder in Path(out_dir).glob(".staging-*-*"):
        pid = folder.name.split("-")[1]
        if not (pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))):
            continue
        if (folder / JOURNAL).is_file():
            _publish(folder, Path(out_dir), (folder / JOURNAL).read_text().strip())
        shutil.rmtree(folder, ignore_errors=True)


def _publish(staging: Path, out_dir: Path, last: str) -> None:
    """Move a complete staged set into `out_dir`, the files ending in `last` last."""
    files = sorted((p for p in staging.iterdir() if p.name != JOURNAL),
                   key=lambda p: (p.name.endswith(last), p.name))
    for file in files:
        os.replace(file, out_dir / file.name)
    (staging / JOURNAL).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success only."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    make_ordinary(tmp_path)  # mkstemp makes 0600; results are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write `text` to `target` so that a reader sees the old file or the whole new one."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def staged_outputs(out_dir: str | Path, last: str) -> Iterator[Path]:
    """Yield a staging folder inside `out_dir`; on success move its files into `out_dir`.

    Files move in name order with those ending in `last` (the map, or a download's item.json)
    moved last, so a complete-looking result only appears once everything beside it is in
    place. On failure earlier results are untouched. A journal written before the first move
    lets the next run finish a move that a kill interrupted (`remove_stale_staging`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=out_dir))
    try:
        yield staging
        with atomic_path(staging / JOURNAL) as tmp:  # every file is complete: publish them all
            tmp.write_text(last)
        _publish(staging, out_dir, last)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
