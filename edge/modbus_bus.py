"""One Modbus bus (RS-485 serial line or TCP link) and the meters on it, read one transaction at a time.

RS-485 is half-duplex, so a bus never has two requests in flight; buses run concurrently.
A silent meter costs one short timeout, never a stalled bus; a vanished bus (USB adapter
unplugged) is reopened on the next cycle without restarting the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.config import BusConfig, MeterConfig
from shared.profiles import MeterProfile, RegisterDef
from shared.registers import DecodeError, decode_value
from shared.request_plan import ReadRequest, RegisterSpan, plan_reads, slice_words

log = logging.getLogger("balans.edge.bus")


class MeterUnavailable(Exception):
    """The meter did not answer (timeout), or answered with a Modbus exception."""


@dataclass(frozen=True)
class MeterPlan:
    requests: tuple[ReadRequest, ...]
    registers: dict[str, RegisterDef]


def plan_for(profile: MeterProfile, channel: int, meanings: tuple[str, ...] | None = None,
             gap_cost_registers: int = 20) -> MeterPlan:
    registers = {r.meaning: r for r in profile.registers_for(channel) if meanings is None or r.meaning in meanings}
    spans = [RegisterSpan(r.function, r.address, r.count, r.meaning) for r in registers.values()]
    return MeterPlan(tuple(plan_reads(spans, gap_cost_registers=gap_cost_registers)), registers)


class ModbusBus:
    """A pymodbus client for one bus, guarded by a lock: one transaction at a time."""

    def __init__(self, config: BusConfig, profiles: dict[str, MeterProfile]):
        self.config = config
        self.profiles = profiles
        self.lock = asyncio.Lock()
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.requests = 0
        self._plans: dict[tuple[str, int, tuple[str, ...] | None], MeterPlan] = {}

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        # retries=0: a retry per request would multiply the cost of a dead meter; the
        # gateway retries a meter in the next cycle with back-off instead.
        if self.config.kind == "tcp":
            return AsyncModbusTcpClient(
                self.config.host, port=self.config.port, timeout=self.config.timeout, retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusSerialClient(
            self.config.device, baudrate=self.config.baudrate, parity=self.config.parity,
            stopbits=self.config.stopbits, bytesize=8, timeout=self.config.timeout, retries=0,
            reconnect_delay=0,
        )

    async def ensure_open(self) -> bool:
        if self.client is not None and self.client.connected:
            return True
        if self.client is not None:
            self.client.close()
        self.client = self._make_client()
        try:
            return bool(await self.client.connect())
        except (OSError, ModbusException) as exc:
            log.warning("bus %s: cannot open (%s)", self.config.name, exc)
            return False

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def read(self, meter: MeterConfig, meanings: tuple[str, ...] | None = None) -> dict[str, str]:
        key = (meter.profile, meter.channel, meanings)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_for(self.profiles[meter.profile], meter.channel, meanings,
                                               self.config.read_through_gap())
        words: dict[str, list[int]] = {}
        async with self.lock:
            if not await self.ensure_open():
                raise MeterUnavailable(f"bus {self.config.name} is not open")
            for request in plan.requests:
                words.update(await self._transaction(meter, request))
        values = {}
        for meaning, register in plan.registers.items():
            try:
                values[meaning] = decode_value(words[meaning], register)
            except DecodeError as exc:
                raise MeterUnavailable(f"meter {meter.id}: {exc}") from exc
        return values

    async def _transaction(self, meter: MeterConfig, request: ReadRequest) -> dict[str, list[int]]:
        assert self.client is not None
        self.requests += 1
        call = self.client.read_input_registers if request.function == 4 else self.client.read_holding_registers
        try:
            if meter.timeout is None:
                response = await call(request.address, count=request.count, device_id=meter.unit)
            else:
                response = await asyncio.wait_for(call(request.address, count=request.count, device_id=meter.unit),
                                                  meter.timeout)
        except TimeoutError as exc:
            # The meter's own timeout ran out: drop the connection so a late answer cannot be taken for the
            # next meter's; the next read opens it again.
            self.close()
            waited = meter.timeout or self.config.timeout
            raise MeterUnavailable(f"meter {meter.id} (unit {meter.unit}): no answer in {waited} s") from exc
        except ModbusException as exc:
            if meter.timeout is not None and "cancelled" in str(exc):
                # pymodbus reports our per-meter timeout as a cancelled request: same meaning, same cure.
                self.close()
                raise MeterUnavailable(f"meter {meter.id} (unit {meter.unit}): no answer in {meter.timeout} s") from exc
            raise MeterUnavailable(f"meter {meter.id} (unit {meter.unit}): no answer ({exc})") from exc
        except OSError as exc:
            self.close()
            raise MeterUnavailable(f"meter {meter.id}: bus {self.config.name} failed ({exc})") from exc
        if response.isError():
            raise MeterUnavailable(f"meter {meter.id} (unit {meter.unit}): Modbus exception {response}")
        if len(response.registers) != request.count:
            raise MeterUnavailable(
                f"meter {meter.id}: asked {request.count} registers, got {len(response.registers)}"
            )
        return slice_words(request, list(response.registers))
