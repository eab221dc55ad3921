"""Start-up's objects kept out of the garbage collector's full collections.

A worker, its projector or the API holds a hundred to three hundred thousand objects made at
start-up (modules, classes, Faust's, pydantic's and the clients' own) that live as long as
the process. Each full collection of the cyclic collector traverses all of them: 100-230 ms
on this machine, with every command and request of that process waiting meanwhile
(bench/ANALYSIS.md, "Garbage collection pauses"). `gc.freeze` moves them to a generation the
collector skips; reference counting still frees any of them once its last reference goes.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["freeze_startup_objects"]

log = logging.getLogger(__name__)


def freeze_startup_objects(process: str) -> None:
    """Call once a process has started (its clients made), before it serves."""
    gc.collect()  # start-up's garbage goes first, not into the frozen generation
    gc.freeze()
    log.info("%s: %d start-up objects kept out of garbage collection", process,
             gc.get_freeze_count())
