"""The Dask cluster of a job: a local one (`--workers`) or an existing scheduler, quiet unless asked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from geolulc.core.deadline import within
from geolulc.errors import ClusterError, DependencyError
from geolulc.mapping.request import (
    MapRequest,
)

if TYPE_CHECKING:  # an optional dependency (the `dask` extra)
    from distributed import Client

log = logging.getLogger(__name__)


#: Seconds to reach a Dask scheduler, handshake included. distributed's own `timeout` covers the
#: TCP connection only: a listener that accepts and never answers holds it for ever.
SCHEDULER_CONNECT_S = 15.0


def connect_scheduler(address: str, deadline: float = SCHEDULER_CONNECT_S) -> Client:
    """A client of the scheduler at `address`, or a one-line error within `deadline` seconds.

    The connection is abandoned at the deadline (`geolulc.core.deadline.within`), so a silent
    scheduler never keeps the process alive.
    """
    from distributed import Client

    # its own connect timeout ends first, so a refused port is said as such
    timeout = f"{max(deadline - 5, 1):.0f}s"
    try:
        return within(lambda: Client(address, timeout=timeout), deadline,
                      "geolulc-dask-connect")
    except Exception as exc:  # unreachable, not an address, or no answer at all
        raise ClusterError(f"cannot reach the Dask scheduler {address}: {exc}") from None


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
        with connect_scheduler(req.scheduler) as client:
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
