"""The worker (``balans cloud worker``): N threads each claim a due job, run its task and record the outcome;
the main thread ticks the schedule, re-queues the jobs of dead workers and keeps this worker's heartbeat.
Run one beside gunicorn (docs/jobs.md); more than one, on one machine or several, is safe."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from flask import Flask

from cloud.errors import ExplainedError
from cloud.jobs import queue, schedule
from cloud.jobs.tasks import TASKS, Context, Permanent, max_attempts

log = logging.getLogger("balans.worker")
TICK_SECONDS = 10  # how often the schedule is looked at and dead workers looked for


@dataclass
class Worker:
    app: Flask
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    concurrency: int = 1
    poll_seconds: float = 1.0
    scheduled: bool = True  # tick the schedule too (False: only run what is queued)
    stop: threading.Event = field(default_factory=threading.Event)
    running: dict[int, queue.Claimed] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_one(self, slot: int = 0) -> queue.Claimed | None:
        """Claim one due job and run it to its outcome; None when nothing was due."""
        job = queue.claim(self.app, f"{self.name}/{slot}"[:80])
        if job is None:
            return None
        with self._lock:
            self.running[job.id] = job
        try:
            execute(self.app, job)
        finally:
            with self._lock:
                self.running.pop(job.id, None)
        return job

    def housekeeping(self) -> None:
        if self.scheduled:
            schedule.tick(self.app)
        for job_id in queue.requeue_stale(self.app, max_attempts):
            log.warning("job %s: its worker stopped answering; queued again (or failed)", job_id)

    def beat(self) -> None:
        with self._lock:
            jobs = list(self.running.values())
        try:
            queue.heartbeat(self.app, jobs)
        except Exception:  # a busy database must not stop the worker; the next beat tries again
            log.exception("heartbeat failed")

    def once(self) -> int:
        """Tick, then run every job that is due now, ``concurrency`` at a time; return how many ran."""
        self.housekeeping()
        ran = []

        def drain(slot: int) -> None:
            while self.run_one(slot) is not None:
                ran.append(1)

        self._in_threads(drain)
        return len(ran)

    def forever(self) -> None:
        """Until ``stop`` is set (SIGTERM, Ctrl-C): claim and run, tick every TICK_SECONDS, beat meanwhile."""
        def loop(slot: int) -> None:
            while not self.stop.is_set():
                try:
                    if self.run_one(slot) is None:
                        self.stop.wait(self.poll_seconds)
                except Exception:
                    log.exception("worker slot %s", slot)
                    self.stop.wait(self.poll_seconds)

        threads = self._start(loop)
        last_tick = last_beat = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_tick >= TICK_SECONDS:
                try:
                    self.housekeeping()
                except Exception:
                    log.exception("schedule tick failed")
                last_tick = now
            if now - last_beat >= queue.HEARTBEAT_SECONDS:
                self.beat()
                last_beat = now
            self.stop.wait(1)
        for thread in threads:
            thread.join()

    def _start(self, target) -> list[threading.Thread]:
        threads = [threading.Thread(target=target, args=(slot,), name=f"worker-{slot}", daemon=True)
                   for slot in range(self.concurrency)]
        for thread in threads:
            thread.start()
        return threads

    def _in_threads(self, target) -> None:
        for thread in self._start(target):
            thread.join()


def execute(app: Flask, job: queue.Claimed) -> str:
    """Run a claimed job's task and record its outcome: done, queued again after back-off, or failed with the
    error's message. Returns the job's status."""
    task = TASKS.get(job.kind)
    if task is None:
        return queue.fail(app, job, f"no task of kind {job.kind!r}", 1, retry=False)
    try:
        result = task.run(Context(app, job))
    except Permanent as exc:
        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        return queue.fail(app, job, str(exc), task.max_attempts, retry=False, result=_explained(exc))
    except Exception as exc:  # any other error may pass (a lock, the network): retried with back-off
        log.warning("job %s (%s), attempt %s: %s", job.id, job.kind, job.attempts, exc)
        return queue.fail(app, job, f"{exc.__class__.__name__}: {exc}", task.max_attempts)
    queue.finish(app, job, result)
    return "done"


def _explained(exc: Exception) -> dict | None:
    """An error's catalogue key and values, so the job's page says it in the reader's language."""
    cause = exc.__cause__ if isinstance(exc.__cause__, ExplainedError) else exc
    if not isinstance(cause, ExplainedError) or not cause.code:
        return None
    return {"error": {"code": cause.code, "params": {k: str(v) for k, v in cause.params.items()}}}
