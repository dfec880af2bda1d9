"""A serial line of meters (RS-485, an optical head, an M-Bus level converter, or ``socket://host:port`` of a
serial-to-Ethernet converter) shared by the IEC 62056-21, M-Bus and DLMS/COSEM buses: one session at a time
under a lock (the line is half-duplex), the blocking port work in a thread, the meter's faults and the port's
told apart — a meter that answers wrongly is unavailable this cycle, a port that fails is opened afresh."""

from __future__ import annotations

import asyncio
import logging
import termios
from collections.abc import Callable
from typing import TypeVar

import serial

from edge.config import BusConfig
from edge.modbus_bus import MeterUnavailable
from shared.profiles import MeterProfile

T = TypeVar("T")
log = logging.getLogger("balans.edge.serial")
PORT_FAULTS = (serial.SerialException, OSError, termios.error)


class SerialMeterLine:
    """The line; a protocol's bus says its ``fault`` (the meter's errors) and its ``framing``."""

    fault: type[Exception] = ValueError

    def __init__(self, config: BusConfig, profiles: dict[str, MeterProfile]):
        self.config = config
        self.profiles = profiles
        self.lock = asyncio.Lock()
        self.port: serial.SerialBase | None = None
        self.requests = 0

    def framing(self) -> dict:
        """pyserial's settings the line opens with: baud rate, byte size, parity, stop bits."""
        return {"baudrate": self.config.baudrate, "bytesize": serial.EIGHTBITS, "parity": self.config.parity,
                "stopbits": self.config.stopbits}

    async def session(self, who: str, work: Callable[[], T]) -> T:
        """``work`` alone on the line, in a thread; its failure as MeterUnavailable naming ``who``."""
        async with self.lock:
            try:
                return await asyncio.to_thread(work)
            except self.fault as exc:  # the meter's: the next session starts afresh on the same port
                raise MeterUnavailable(f"{who}: {exc}") from exc
            except PORT_FAULTS as exc:  # the port's (an adapter unplugged): opened afresh next time
                self.close()
                raise MeterUnavailable(f"{who}: {self.config.device}: {exc}") from exc

    def close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("closing %s failed", self.config.device, exc_info=True)

    def _open(self) -> serial.SerialBase:
        if self.port is None:
            self.port = serial.serial_for_url(self.config.device, timeout=0.02, **self.framing())
        return self.port
