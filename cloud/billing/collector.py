"""Pausing Python's cyclic garbage collector around bulk work.

A billing run of a large site makes millions of small objects (lines, payload dicts, row tuples) that hold no
reference cycles and live until the run is stored; reference counting frees them. The cyclic collector would
still walk every one of them again and again as they age through its generations — a tenth of the run's time.
Inside ``collector_paused()`` it does not run; any cycle made meanwhile is collected after. Nested and
concurrent pauses (two runs in two threads) count: the collector is enabled again when the last one ends,
and only if it was enabled before the first. The pause is the process's: other threads of it (web requests,
ingestion) also run without the cyclic collector meanwhile — harmless for seconds, as reference counting
still frees everything that is not in a cycle.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _pauses, _was_enabled
    paused = False
    try:
        with _lock:
            if _pauses == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _pauses += 1
            paused = True
        yield
    finally:
        if paused:
            with _lock:
                _pauses -= 1
                if _pauses == 0 and _was_enabled:
                    gc.enable()
