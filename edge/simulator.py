"""A simulated transformer station: the scenario's meters served over Modbus TCP by pymodbus.

Each meter is its own unit id and answers like an Eastron meter (float32 input registers)
with counters that follow a household daily load curve and close each month exactly on
the scenario's figures, so the whole pipeline can be checked to the kWh.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.datastore.context import ModbusBaseDeviceContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from edge.clock import Clock
from shared.profiles import MeterProfile, load_profiles
from shared.registers import encode_value
from shared.scenario import Scenario, SimMeter

log = logging.getLogger("balans.sim")

# Share of a day's energy used in each hour (a household: night trough, morning and evening peaks).
HOURLY_SHAPE = (
    2, 1.6, 1.4, 1.3, 1.4, 2, 3.2, 4.4, 4.2, 3.6, 3.4, 3.3,
    3.4, 3.3, 3.2, 3.4, 4, 5.2, 6.6, 7.2, 6.8, 5.6, 4.2, 2.8,
)
_TOTAL = sum(HOURLY_SHAPE)
_CUMULATIVE = [sum(HOURLY_SHAPE[:h]) / _TOTAL for h in range(25)]


def day_fraction(seconds_into_day: float) -> float:
    """Share of the day's energy used by this time of day (piecewise linear, 0 → 1)."""
    hour, within = divmod(seconds_into_day / 3600.0, 1.0)
    h = int(hour)
    return _CUMULATIVE[h] + (_CUMULATIVE[h + 1] - _CUMULATIVE[h]) * within


@dataclass
class MeterModel:
    """What one simulated meter shows at a given instant."""

    meter: SimMeter
    period_start: datetime
    period_end: datetime

    @property
    def days_in_period(self) -> float:
        return self._days(self.period_end)

    def _days(self, at: datetime) -> float:
        """Days since the period's start, each shaped by the daily load curve."""
        days, within = divmod((at - self.period_start).total_seconds(), 86400.0)
        return days + day_fraction(within)

    def progress(self, at: datetime) -> float:
        """Fraction of the period's energy counted by ``at``; exactly 0 and 1 at the bounds (a Kyiv month is
        not whole UTC days: the clocks change in March and October)."""
        return self._days(at) / self.days_in_period

    def values(self, at: datetime) -> dict[str, float]:
        progress = self.progress(at)
        imported = self.meter.start_kwh + self.meter.monthly_kwh * progress
        exported = self.meter.start_export_kwh + self.meter.export_kwh * progress
        hour = int((at - self.period_start).total_seconds() // 3600) % 24
        load = HOURLY_SHAPE[hour] / _TOTAL  # share of the day in this hour
        power_w = self.meter.monthly_kwh / self.days_in_period * load * 1000.0
        # Voltage sags with the evening load and wobbles a little, as on a long rural line.
        voltage = float(self.meter.voltage) - 14.0 * (load - 1 / 24) * 24 / 7 + 0.7 * ((hour * 37) % 5 - 2)
        current = power_w / voltage if voltage > 1 else 0.0
        values = {
            "import_kwh": imported,
            "export_kwh": exported,
            "power_w": power_w,
            "frequency_hz": 50.0,
            "serial_number": float(zlib.crc32(self.meter.meter.encode())),
        }
        for phase in ("l1", "l2", "l3"):
            values[f"voltage_{phase}"] = voltage
            values[f"current_{phase}"] = current
        return values


class SimulatedMeterContext(ModbusBaseDeviceContext):
    """A pymodbus device context that computes registers from the clock at each request."""

    def __init__(self, model: MeterModel, profile: MeterProfile, clock: Clock):
        self.model = model
        self.profile = profile
        self.clock = clock
        self.requests = 0
        self._cached_at: datetime | None = None
        self._words: dict[int, dict[int, int]] = {}

    def reset(self) -> None:
        self._cached_at = None

    def _refresh(self) -> None:
        at = self.clock.now()
        if at == self._cached_at:
            return
        values = self.model.values(at)
        words: dict[int, dict[int, int]] = {3: {}, 4: {}}
        for register in self.profile.registers:
            encoded = encode_value(values.get(register.meaning, 0.0), register)
            for offset, word in enumerate(encoded):
                words[register.function][register.address + offset] = word
        self._words = words
        self._cached_at = at

    def getValues(self, func_code: int, address: int, count: int = 1):
        self.requests += 1
        self._refresh()
        table = self._words.get(func_code)
        if table is None or not table:
            return ExcCodes.ILLEGAL_FUNCTION
        # Like the real meter: reads inside its map answer (gaps read 0), reads outside fail.
        if address < min(table) or address + count - 1 > max(table):
            return ExcCodes.ILLEGAL_ADDRESS
        return [table.get(a, 0) for a in range(address, address + count)]

    def setValues(self, func_code: int, address: int, values) -> ExcCodes:
        return ExcCodes.ILLEGAL_FUNCTION


class SimulatedStation:
    """A scenario's meters behind one Modbus TCP server, a unit id each."""

    def __init__(self, scenario: Scenario, clock: Clock, host: str = "127.0.0.1", port: int = 5020,
                 serial_port: str | None = None, baudrate: int = 9600):
        self.scenario = scenario
        self.clock = clock
        self.host = host
        self.port = port
        self.serial_port = serial_port  # serve Modbus RTU on this serial device instead of TCP
        self.baudrate = baudrate
        profiles = load_profiles()
        self.meters = {
            m.unit: SimulatedMeterContext(MeterModel(m, scenario.period_start, scenario.period_end),
                                          profiles[m.profile], clock)
            for m in scenario.meters
        }
        self.context = ModbusServerContext(devices=dict(self.meters), single=False)
        self.server: ModbusTcpServer | ModbusSerialServer | None = None

    def silence(self, unit: int) -> None:
        """Make a meter stop answering (a dead meter, a cut wire)."""
        if unit in self.context:
            del self.context[unit]

    def revive(self, unit: int) -> None:
        self.context[unit] = self.meters[unit]

    async def start(self) -> None:
        if self.serial_port:
            self.server = ModbusSerialServer(self.context, framer=FramerType.RTU, port=self.serial_port,
                                             baudrate=self.baudrate, ignore_missing_devices=True)
            where = f"RTU {self.serial_port}"
        else:
            self.server = ModbusTcpServer(self.context, address=(self.host, self.port), ignore_missing_devices=True)
            where = f"TCP {self.host}:{self.port}"
        await self.server.serve_forever(background=True)
        log.info("simulated station %s serving %d meters on %s", self.scenario.site, len(self.meters), where)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def __aenter__(self) -> SimulatedStation:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def serve_forever(station: SimulatedStation) -> None:
    async with station:
        await asyncio.Event().wait()
