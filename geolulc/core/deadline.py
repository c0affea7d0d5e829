"""Waiting for work that may never end: a call in a daemon thread, abandoned at a deadline."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlinePassed(Exception):
    """The call did not finish within its deadline (it is left running in its daemon thread)."""


def within(call: Callable[[], T], seconds: float, name: str,
           waiting: Callable[[float], None] | None = None, every: float = math.inf) -> T:
    """`call()`'s result, or its exception, or `DeadlinePassed` after `seconds`.

    The call runs in a daemon thread, so a request stuck past the deadline never keeps the
    process alive: the caller says its one line and the process exits. `waiting(elapsed)` is
    called every `every` seconds while it waits.
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # handed to the caller's thread (or dropped at exit)
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    t0 = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - t0)
        if left <= 0:
            raise DeadlinePassed(f"no answer within {seconds:.0f} s")
        if done.wait(min(every, left)):
            if "error" in outcome:
                raise outcome["error"]
            return outcome["result"]
        if waiting is not None and time.monotonic() - t0 < seconds:
            waiting(time.monotonic() - t0)
