"""One M-Bus (EN 13757-2/-3) line — a level converter on a serial port, or ``socket://host:port`` — and the
heat meters on it, read one at a time: addressed by primary address (``unit`` 1–250) or selected by secondary
address (the 16 hex digits of identification number, manufacturer, version and medium), then asked for their
data (REQ_UD2) and their variable data records decoded by pyMeterBus.

A record's value comes in the unit its VIF gives (Wh for energy whatever the meter's own multiplier; J for
energy in joules); the profile says which records to keep, and this module converts energy to Gcal for heat
billing (1 Gcal = 4.1868 GJ = 1 163 kWh), exactly, in Decimal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

import meterbus
import serial
from meterbus.exceptions import MBusError

from edge.config import MeterConfig
from edge.serial_line import SerialMeterLine
from shared.profiles import MbusRecordDef

log = logging.getLogger("balans.edge.mbus")

ACK = 0xE5
NETWORK_LAYER = 0xFD  # the address a meter selected by its secondary address answers at
WH_PER_GCAL = Decimal("1163000")  # 1 Gcal = 4.1868 GJ = 1.163 MWh (the international-table calorie)
J_PER_GCAL = Decimal("4186800000")


class MbusError(ValueError):
    """An answer that is not a usable M-Bus frame; the message says why."""


def short_frame(control: int, address: int) -> bytes:
    """10 C A CS 16: SND_NKE (0x40, initialise) and REQ_UD2 (0x5B, ask for class 2 data)."""
    return bytes([0x10, control, address, (control + address) & 0xFF, 0x16])


def select_frame(secondary: str) -> bytes:
    """SND_UD to the network layer selecting one meter by its secondary address (EN 13757-3, CI 0x52)."""
    if len(secondary) != 16:
        raise MbusError(f"secondary address {secondary!r}: 16 hex digits (id, manufacturer, version, medium)")
    try:
        identification = bytes.fromhex(secondary[:8])[::-1]
        rest = bytes.fromhex(secondary[8:])
    except ValueError as exc:
        raise MbusError(f"secondary address {secondary!r}: not hexadecimal") from exc
    body = bytes([0x73, NETWORK_LAYER, 0x52]) + identification + rest  # SND_UD with FCB, as libmbus sends it
    return bytes([0x68, len(body), len(body), 0x68]) + body + bytes([sum(body) & 0xFF, 0x16])


def frame_length(buffer: bytes) -> int | None:
    """The length of the frame at the start of ``buffer`` once it is whole, or None."""
    if not buffer:
        return None
    if buffer[0] == ACK:
        return 1
    if buffer[0] == 0x10:
        return 5 if len(buffer) >= 5 else None
    if buffer[0] == 0x68 and len(buffer) >= 4:
        total = buffer[1] + 6
        return total if len(buffer) >= total else None
    if buffer[0] not in (0x10, 0x68):
        raise MbusError(f"an answer starting {buffer[:8].hex(' ')} is no M-Bus frame")
    return None


def records_of(frame: bytes, address: int | None) -> tuple[str, list[tuple[str, int, int, Decimal | int | str]]]:
    """The meter's secondary address and its records as (type, storage, tariff, value), from an RSP_UD."""
    if frame[-1] != 0x16 or frame[1] != frame[2] or frame[3] != 0x68:
        raise MbusError(f"a frame of {len(frame)} bytes with a broken header or no stop byte")
    if sum(frame[4:-2]) & 0xFF != frame[-2]:
        raise MbusError(f"checksum 0x{frame[-2]:02x}, the frame gives 0x{sum(frame[4:-2]) & 0xFF:02x}")
    if address is not None and frame[5] != address:
        raise MbusError(f"answer from address {frame[5]}, asked {address}")
    try:
        telegram = meterbus.load(frame)
        records = []
        for record in telegram.records:
            try:
                described = record.interpreted
            except (KeyError, TypeError, ValueError, IndexError):
                continue  # a manufacturer-specific record the library does not describe: not one we read
            records.append((str(described["type"]).split(".")[-1], int(described["storage_number"]),
                            int(getattr(record.dib, "tariff", 0) or 0), described["value"]))
        return telegram.secondary_address, records
    except MBusError as exc:
        raise MbusError(f"undecodable frame: {exc}") from exc


def exact(value) -> Decimal:
    """pyMeterBus scales BCD and integers through floats (59.4 °C arrives as 59.400000000000006): no M-Bus
    value is finer than a millionth (VIF exponents reach 10⁻⁶), so that is where the float's noise is cut."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if number == number.to_integral_value():
        return number.quantize(Decimal(1))
    return Decimal(format(number.quantize(Decimal("0.000001")).normalize(), "f"))


def values_of(records, wanted: tuple[MbusRecordDef, ...], meter: MeterConfig) -> dict[str, str]:
    values = {}
    for definition in wanted:
        found = next(((kind, value) for kind, storage, tariff, value in records
                      if kind in definition.types and storage == definition.storage and tariff == definition.tariff),
                     None)
        if found is None:
            raise MbusError(f"meter {meter.id} sent no {'/'.join(definition.types)} record "
                            f"(storage {definition.storage}) for {definition.meaning}")
        kind, number = found[0], exact(found[1])
        if definition.to == "Gcal":
            number = number / (J_PER_GCAL if kind.endswith("_J") else WH_PER_GCAL)
            number = number.quantize(Decimal("0.000001"))  # a millionth of a Gcal: 1.163 Wh
        elif definition.to == "kWh":
            number = number / 1000
        values[definition.meaning] = str(number)
    return values


@dataclass(frozen=True)
class FoundMeter:
    """A meter a scan found: where it answers and what it says it is."""

    primary: int
    secondary: str  # identification, manufacturer, version, medium: the address that selects it
    manufacturer: str
    medium: str  # EN 13757-3's medium code (0x04: heat, outlet; 0x0C: heat, inlet; 0x07: water, …)


class MbusBus(SerialMeterLine):
    """A serial M-Bus line (edge/serial_line.py): one meter at a time, the bus is half-duplex."""

    fault = MbusError

    def framing(self) -> dict:
        return {"baudrate": self.config.baudrate, "bytesize": serial.EIGHTBITS, "parity": serial.PARITY_EVEN,
                "stopbits": serial.STOPBITS_ONE}  # EN 13757-2: 8E1

    async def read(self, meter: MeterConfig, meanings: tuple[str, ...] | None = None) -> dict[str, str]:
        profile = self.profiles[meter.profile]
        wanted = tuple(r for r in profile.records if meanings is None or r.meaning in meanings)
        return await self.session(f"meter {meter.id}", lambda: self._session(meter, wanted))

    async def scan(self, addresses: Iterable[int] = range(1, 251),
                   progress: Callable[[int, int], None] | None = None) -> list[FoundMeter]:
        """Every meter that answers at a primary address: one SND_NKE each (a silent address costs one
        timeout), then its data for what it is. ``progress(done, total)`` after each address."""
        addresses = list(addresses)
        async with self.lock:
            return await asyncio.to_thread(self._scan, addresses, progress)

    def _scan(self, addresses: list[int], progress) -> list[FoundMeter]:
        port = self._open()
        found = []
        for done, address in enumerate(addresses, start=1):
            try:
                self._exchange(port, short_frame(0x40, address), self.config.timeout, "SND_NKE", expect_ack=True)
                frame = self._exchange(port, short_frame(0x5B, address), self.config.timeout, "REQ_UD2")
                secondary, _ = records_of(frame, address)
                header = meterbus.load(frame).body.bodyHeader.interpreted
                found.append(FoundMeter(address, secondary, str(header["manufacturer"]), str(header["medium"])))
            except MbusError as exc:
                log.debug("nothing usable at M-Bus address %d: %s", address, exc)
                port.reset_input_buffer()
            if progress is not None:
                progress(done, len(addresses))
        return found

    def _session(self, meter: MeterConfig, wanted: tuple[MbusRecordDef, ...]) -> dict[str, str]:
        port = self._open()
        port.reset_input_buffer()
        timeout = meter.timeout if meter.timeout is not None else self.config.timeout
        if meter.address:  # secondary addressing: select it, then speak to the network layer
            self._exchange(port, select_frame(meter.address), timeout, "the selection", expect_ack=True)
            address = NETWORK_LAYER
        else:
            address = meter.unit
            self._exchange(port, short_frame(0x40, address), timeout, "SND_NKE", expect_ack=True)
        frame = self._exchange(port, short_frame(0x5B, address), timeout, "REQ_UD2")
        secondary, records = records_of(frame, None if meter.address else address)
        if meter.address and secondary.upper() != meter.address.upper():
            raise MbusError(f"answer from {secondary}, selected {meter.address}")
        return values_of(records, wanted, meter)

    def _exchange(self, port: serial.SerialBase, request: bytes, timeout: float, what: str,
                  expect_ack: bool = False) -> bytes:
        self.requests += 1
        port.write(request)
        buffer = b""
        quiet_since = time.monotonic()
        while True:
            chunk = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if chunk:
                buffer += chunk
                quiet_since = now
                length = frame_length(buffer)
                if length:
                    answer = buffer[:length]
                    if expect_ack and answer != bytes([ACK]):
                        raise MbusError(f"{what} answered with {answer[:8].hex(' ')}, not the single-character ACK")
                    if not expect_ack and answer[0] != 0x68:
                        raise MbusError(f"{what} answered with {answer[:8].hex(' ')}, not a long frame")
                    return answer
            elif now - quiet_since > timeout:
                if not buffer:
                    raise MbusError(f"no answer to {what} within {timeout:g} s")
                raise MbusError(f"the answer to {what} stopped after {len(buffer)} bytes: {buffer[:16].hex(' ')}")
