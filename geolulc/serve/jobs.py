"""Map jobs of the server: kept in SQLite, run one `geolulc map` process each, resumable.

A job is accepted only after its input is checked, then queued (a bounded queue) and run by one
of a fixed number of worker threads as ``python -m geolulc map`` in its own folder: the same
code as the command line, with its chunk cache, so a job interrupted by a server restart is run
again and resumes from its finished chunks. Progress (cells done/total) is read from the map's
progress line. Cancelling kills the job's process group and removes its folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Job states; `queued` and `running` jobs are resumed when the server starts.
STATES = ("queued", "running", "done", "failed", "cancelled")
#: The map's progress line (tqdm): "mapping:  45%|…| 1234/5678 […]".
_PROGRESS = re.compile(r"mapping:.*?(\d+)/(\d+)")
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: Stem of every job's map files.
MAP_NAME = "map"


@dataclass(frozen=True)
class JobSpec:
    """What a map job was asked to do, checked before it is accepted."""

    aoi: dict[str, Any]
    date: str
    model: str
    composite: str
    stride: int
    chunk_rows: int | None = None

    def args(self) -> list[str]:
        """The `geolulc map` options of the job (the AOI file and output folder aside)."""
        extra = ["--chunk-rows", str(self.chunk_rows)] if self.chunk_rows else []
        return ["--date", self.date, "--model", self.model, "--composite", self.composite,
                "--stride", str(self.stride), *extra]


class JobStore:
    """Job records in SQLite: they outlive the server, so a restarted one knows its jobs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, spec TEXT, "
                       "state TEXT, error TEXT, done INTEGER, total INTEGER, created REAL, "
                       "finished REAL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def add(self, spec: JobSpec) -> str:
        """A new queued job; its id is unguessable."""
        job_id = secrets.token_urlsafe(18)
        with self._lock, self._connect() as db:
            db.execute("INSERT INTO jobs VALUES (?, ?, 'queued', NULL, 0, 0, ?, NULL)",
                       (job_id, json.dumps(spec.__dict__), time.time()))
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The record of a job, or None (also for anything that is no job id)."""
        if not _ID.match(job_id):
            return None
        with self._lock, self._connect() as db:
            row = db.execute("SELECT id, spec, state, error, done, total, created, finished "
                             "FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        keys = ("id", "spec", "state", "error", "done", "total", "created", "finished")
        record = dict(zip(keys, row, strict=True))
        record["spec"] = json.loads(record["spec"])
        return record

    def update(self, job_id: str, **fields: object) -> None:
        """Set some fields of a job."""
        names = ", ".join(f"{k} = ?" for k in fields)
        with self._lock, self._connect() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def transition(self, job_id: str, from_states: tuple[str, ...], state: str,
                   **fields: object) -> bool:
        """Move a job to `state` only if it is in one of `from_states`; whether it moved.

        Atomic, so a cancel and a worker that starts or finishes the same job cannot both win.
        """
        names = ", ".join(f"{k} = ?" for k in ("state", *fields))
        marks = ", ".join("?" for _ in from_states)
        with self._lock, self._connect() as db:
            moved = db.execute(f"UPDATE jobs SET {names} WHERE id = ? AND state IN ({marks})",
                               (state, *fields.values(), job_id, *from_states)).rowcount
        return moved == 1

    def unfinished(self) -> list[str]:
        """Queued and running jobs, oldest first: what a starting server has to run."""
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running') "
                              "ORDER BY created").fetchall()
        return [r[0] for r in rows]


class JobRunner:
    """Runs queued jobs, `workers` at a time, each as a `geolulc map` process."""

    def __init__(self, store: JobStore, root: Path, catalog: str, collection: str,
                 max_area_km2: float, workers: int, max_queue: int,
                 timeout_s: float = 6 * 3600) -> None:
        self.store, self.root = store, root
        self.catalog, self.collection, self.max_area_km2 = catalog, collection, max_area_km2
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self.queue: queue.Queue[str] = queue.Queue()  # bounded by `submit`, not by `put`
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        for job_id in store.unfinished():  # a restarted server resumes its jobs
            store.update(job_id, state="queued")
            self.queue.put(job_id)
        self.threads = [threading.Thread(target=self._work, daemon=True, name=f"job-{i}")
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def folder(self, job_id: str) -> Path:
        """The folder of a job's files."""
        return self.root / job_id

    def submit(self, spec: JobSpec) -> str | None:
        """Queue a checked job; None when `max_queue` jobs wait already."""
        with self._lock:
            if self.queue.qsize() >= self.max_queue:
                return None
            job_id = self.store.add(spec)
            folder = self.folder(job_id)
            folder.mkdir(parents=True)
            (folder / "aoi.geojson").write_text(json.dumps(spec.aoi))
            self.queue.put(job_id)
        return job_id

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job (its process group) and remove its files.

        Whether it was cancelled: a job that has just finished is left as it is.
        """
        if not self.store.transition(job_id, ("queued", "running"), "cancelled",
                                     finished=time.time()):
            return False
        with self._lock:
            proc = self.processes.get(job_id)
        if proc is not None:
            _kill(proc)
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return True

    def _work(self) -> None:
        while True:
            job_id = self.queue.get()
            if not self.store.transition(job_id, ("queued",), "running"):
                continue  # cancelled while it waited
            record = self.store.get(job_id)
            try:
                self._run(job_id, JobSpec(**record["spec"]) if record else None)
            except Exception as exc:  # noqa: BLE001 - a job's failure must not stop the worker
                log.exception("job %s", job_id)
                self.store.transition(job_id, ("running",), "failed", finished=time.time(),
                                      error=f"{type(exc).__name__}: {exc}")

    def _run(self, job_id: str, spec: JobSpec | None) -> None:
        if spec is None:
            return
        folder = self.folder(job_id)
        command = [sys.executable, "-m", "geolulc.cli.child", "map",
                   "--aoi", str(folder / "aoi.geojson"), *spec.args(), "--catalog", self.catalog,
                   "--collection", self.collection, "--max-area", str(self.max_area_km2),
                   "--out", str(folder / "out"), "--name", MAP_NAME]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "GEOLULC_PARENT_PID": str(os.getpid())}
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env, start_new_session=True)
        with self._lock:
            self.processes[job_id] = proc
        if (self.store.get(job_id) or {}).get("state") != "running":
            _kill(proc)  # cancelled between its start and its registration
        timer = threading.Timer(self.timeout_s, _kill, (proc,))
        timer.start()
        last_error = ""
        assert proc.stderr is not None
        buffer = b""
        while chunk := os.read(proc.stderr.fileno(), 4096):
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                line = raw.decode("utf-8", "replace").strip()
                if match := _PROGRESS.search(line):
                    self.store.update(job_id, done=int(match[1]), total=int(match[2]))
                elif line.startswith("Error: "):
                    last_error = line.removeprefix("Error: ")
        code = proc.wait()
        timer.cancel()
        with self._lock:
            self.processes.pop(job_id, None)
        if code == 0:
            self.store.transition(job_id, ("running",), "done", finished=time.time())
        else:
            timed_out = code == -signal.SIGKILL and not last_error
            error = (f"the job took longer than {self.timeout_s:.0f} s" if timed_out
                     else last_error or f"the map process ended with status {code}")
            self.store.transition(job_id, ("running",), "failed", finished=time.time(),
                                  error=error)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a job's process group (the map and any Dask workers it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
