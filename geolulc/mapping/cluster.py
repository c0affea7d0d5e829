"""The Dask cluster of a job: a local one (`--workers`) or an existing scheduler, quiet unless asked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from geolulc.errors import ClusterError, DependencyError
from geolulc.mapping.request import (
    MapRequest,
)

if TYPE_CHECKING:  # an optional dependency (the `dask` extra)
    from distributed import Client

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(req: MapRequest) -> Iterator[Client | None]:
    """A dask.distributed client for --scheduler or --workers, or None to run in-process."""
    if not req.scheduler and not req.workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DependencyError("`workers`/`scheduler` need dask: pip install 'geolulc[dask]'") \
            from None
    if req.scheduler:
        try:
            client = Client(req.scheduler, timeout="10s")
        except (OSError, ValueError, TypeError) as exc:  # unreachable, or not an address
            raise ClusterError(f"cannot reach the Dask scheduler {req.scheduler}: {exc}") \
                from None
        with client:
            yield client
        return
    quiet = logging.WARNING if log.getEffectiveLevel() >= logging.WARNING else logging.INFO
    if not req.progress:  # --quiet: the cluster's own INFO lines too
        quiet = logging.ERROR
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=req.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=quiet) as cluster, \
            Client(cluster) as client:
        yield client
