"""Parse workers: on SQLite a batch is verified and converted in another process while the writer writes the
group before it (under the GIL, a thread doing it would slow the writer down). Whatever goes wrong in a worker,
the writer does the work itself and names the error; a stuck or broken pool is replaced, and after three the
process parses in the writer for good."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from cloud.ingest.rows import verified_rows

log = logging.getLogger(__name__)


def parsed_rows(public_key_pem: str, gateway_code: str, body: bytes, signature: bytes,
                meters: dict[str, int]) -> tuple | None:
    """``verified_rows`` run in a worker process, or None when anything is wrong: the writer then does it
    again itself and names the error."""
    try:
        return verified_rows(public_key_pem, gateway_code, body, signature, meters)
    except Exception:
        return None


@dataclass
class Parsed:
    """A batch being parsed in a worker process, with the key and meters it is parsed with."""

    public_key_pem: str
    meters: dict[str, int]
    future: Future
    pool: ProcessPoolExecutor

    def result(self, public_key_pem: str, meters: dict[str, int]) -> tuple | None:
        """The worker's result if it was made with this key and these meters and succeeded, else None."""
        if public_key_pem != self.public_key_pem or meters != self.meters:
            self.future.cancel()
            return None
        try:
            return self.future.result(timeout=PARSE_SECONDS)
        except TimeoutError:  # a stuck worker: its pool goes, and the writer parses this batch itself
            discard_pool(self.pool, kill=True)
            return None
        except Exception:  # a broken pool: the writer parses it itself
            return None


PARSE_SECONDS = 30.0  # the leader waits this long for a worker (it holds the write lock meanwhile)
MAX_POOL_FAILURES = 3  # pools that broke or stuck before the process parses in the writer for good
_parse_pool: ProcessPoolExecutor | None = None
_parse_pool_pid = 0  # the process that started it: a forked child starts its own
_parse_pool_failures = 0
_parse_pool_guard = threading.Lock()


def parse_pool() -> ProcessPoolExecutor | None:
    """The process's pool of parse workers (one fewer than its CPUs, at most four; none on one CPU or after
    repeated failures), started on first use."""
    global _parse_pool, _parse_pool_pid
    with _parse_pool_guard:
        if _parse_pool is None or _parse_pool_pid != os.getpid():
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            if cpus < 2 or _parse_pool_failures >= MAX_POOL_FAILURES:
                return None
            # spawn, not fork: the app has threads (the server's, the writer's) that a fork would copy mid-step.
            _parse_pool = ProcessPoolExecutor(min(cpus - 1, 4), mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_end_with_parent, initargs=(os.getpid(),))
            _parse_pool_pid = os.getpid()
        return _parse_pool


def discard_pool(pool: ProcessPoolExecutor, kill: bool = False) -> None:
    """A pool that cannot take work (a worker died or is stuck): the next batch starts a new one."""
    global _parse_pool, _parse_pool_failures
    with _parse_pool_guard:
        if _parse_pool is pool:
            _parse_pool = None
            _parse_pool_failures += 1
            if _parse_pool_failures >= MAX_POOL_FAILURES:
                log.warning("parse workers failed %d times: this process parses batches in the writer from now on",
                            _parse_pool_failures)
    processes = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:  # shutdown() does not stop a worker that hangs
        process.kill()


def _end_with_parent(parent: int) -> None:
    """In a parse worker: end when the app's process has ended, however it ended (a killed server leaves no
    worker behind)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="balans-parse-parent", daemon=True).start()
