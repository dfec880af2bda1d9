"""Clocks for the gateway and the simulator: the system clock, and a virtual one for fast runs.

Time is injected so a month of a simulated station can pass in a minute and still
produce exact monthly totals: with the virtual clock, time stands still while the
gateway polls, and jumps to the next poll when it sleeps.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never jumps."""

    async def sleep_until(self, when: datetime) -> None:
        """Return at (or just after) ``when``."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        await asyncio.sleep(max(0.0, delay))


class VirtualClock:
    """Time that moves only when the gateway sleeps: ``sleep_until`` jumps straight there.

    ``stop_at`` makes sleeping past that instant wait until the run is cancelled, so a
    demo can end its month and keep serving without the counters moving on.
    """

    def __init__(self, start: datetime, stop_at: datetime | None = None):
        self._now = start
        self._mono = 0.0
        self.stop_at = stop_at

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep_until(self, when: datetime) -> None:
        if self.stop_at is not None and when > self.stop_at:
            await asyncio.Event().wait()  # the month is over: wait to be cancelled
        if when > self._now:
            self._mono += (when - self._now).total_seconds()
            self._now = when
        await asyncio.sleep(0)


class AcceleratedClock:
    """Wall time running ``speed`` times faster from ``start`` (for a separate simulator process)."""

    def __init__(self, start: datetime, speed: float):
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.start.timestamp() + self.monotonic(), UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds() / self.speed
        await asyncio.sleep(max(0.0, delay))
