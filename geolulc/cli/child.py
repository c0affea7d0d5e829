"""The process of one map job: `geolulc` that dies with the server that started it.

Linux's parent-death signal is set here, in the job's own process at its start, rather than
between fork and exec of a multi-threaded server (where Python warns it can deadlock).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    """Arrange to be killed with the server, then run the command line."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(os.environ.get("GEOLULC_PARENT_PID", os.getppid())):
        sys.exit(1)  # the server died before the signal was set
    from geolulc.cli import main as cli

    cli(prog_name="geolulc")


if __name__ == "__main__":
    main()
