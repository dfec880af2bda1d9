"""One IEC 62056-21 line (an optical head, an RS-485 pair, or an RS-485-to-Ethernet converter at
``socket://host:port``) and the meters on it, read one session at a time in mode C: sign-on at 300 baud,
the meter's identification, the option select at the rate both can use, then either the whole data readout
or, in programming mode, the password and one read per parameter, closed by a break.

The frames are ``shared/iec62056_21.py``'s; this module only moves bytes, under the bus's timeout: a meter
that does not answer, stops half-way or sends a block whose check fails costs one session, never the line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import serial

from edge.config import MeterConfig
from edge.serial_line import SerialMeterLine
from shared.iec62056_21 import (
    ACK,
    BAUD_RATES,
    PROGRAMMING,
    READOUT,
    DataSet,
    Iec62056Error,
    agreed_baud,
    block_text,
    command,
    error_text,
    frame_length,
    obis_key,
    option_select,
    parse_command,
    parse_data,
    parse_identification,
    password,
    read,
    sign_on,
)
from shared.profiles import IecValue, MeterProfile

log = logging.getLogger("balans.edge.iec62056")

SESSION_SECONDS = 60.0  # no readout, however long, holds the line longer
# After the option select the meter changes its rate; the standard gives it 200–1 500 ms before it answers.
SWITCH_PAUSE = 0.05


class Iec62056Bus(SerialMeterLine):
    """A serial line spoken to in IEC 62056-21 mode C (edge/serial_line.py): one meter session at a time; a
    meter's fault ends its session, the next one starts with a sign-on."""

    fault = Iec62056Error

    def framing(self) -> dict:  # every session signs on at 300 baud, 7E1, and agrees a rate with the meter
        return {"baudrate": 300, "bytesize": serial.SEVENBITS, "parity": serial.PARITY_EVEN,
                "stopbits": serial.STOPBITS_ONE}

    async def read(self, meter: MeterConfig, meanings: tuple[str, ...] | None = None) -> dict[str, str]:
        profile = self.profiles[meter.profile]
        wanted = tuple(v for v in profile.values if meanings is None or v.meaning in meanings)
        return await self.session(f"meter {meter.id}", lambda: self._session(meter, profile, wanted))

    async def identify(self, address: str = "", timeout: float | None = None) -> str:
        """A sign-on and the meter's identification (``EKT5CE301v12``: maker, rate, model), then nothing: the
        next sign-on starts afresh (the installer's scan). MeterUnavailable when nothing answers."""
        return await self.session(f"{self.config.device} address {address!r}",
                                  lambda: self._identify(address, timeout or self.config.timeout))

    def _identify(self, address: str, timeout: float) -> str:
        port = self._open()
        set_baud(port, 300)
        port.reset_input_buffer()
        self._send(port, sign_on(address))
        line = self._receive(port, timeout, time.monotonic() + SESSION_SECONDS, "the sign-on",
                             lambda b: b.find(b"\n") + 1 or None)
        found = parse_identification(line)
        return f"{found.manufacturer}{found.baud_char}{found.identification}"

    def _session(self, meter: MeterConfig, profile: MeterProfile, wanted: tuple[IecValue, ...]) -> dict[str, str]:
        port = self._open()
        deadline = time.monotonic() + SESSION_SECONDS
        timeout = meter.timeout if meter.timeout is not None else self.config.timeout
        set_baud(port, 300)
        port.reset_input_buffer()
        self._send(port, sign_on(meter.address))
        line = self._receive(port, timeout, deadline, "the sign-on", lambda b: b.find(b"\n") + 1 or None)
        identification = parse_identification(line)
        baud = agreed_baud(identification, self.config.baudrate)
        programming = profile.mode == "programming"
        self._send(port, option_select(baud, PROGRAMMING if programming else READOUT))
        port.flush()
        time.sleep(SWITCH_PAUSE)
        set_baud(port, BAUD_RATES[baud])
        if not programming:
            block = self._receive(port, timeout, deadline, "the data readout", frame_length)
            return values_of(parse_data(block_text(block, profile.check)), wanted, meter)
        try:
            return self._programming(port, meter, profile, wanted, timeout, deadline)
        finally:
            self._send(port, command("B0", check=profile.check))  # the meter waits for a sign-on again

    def _programming(self, port: serial.SerialBase, meter: MeterConfig, profile: MeterProfile,
                     wanted: tuple[IecValue, ...], timeout: float, deadline: float) -> dict[str, str]:
        check = profile.check
        name, _ = parse_command(self._receive(port, timeout, deadline, "the option select", frame_length), check)
        if name != "P0":
            raise Iec62056Error(f"after the option select the meter sent {name!r}, not its password request P0")
        self._send(port, password(meter.password, check))
        if self._receive(port, timeout, deadline, "the password", frame_length) != bytes([ACK]):
            raise Iec62056Error("the meter refused the password: set password = \"…\" for it in the configuration")
        found: list[DataSet] = []
        for code in dict.fromkeys(v.code for v in wanted):  # each parameter once, in the profile's order
            self._send(port, read(code, check=check))
            data_sets = parse_data(block_text(self._receive(port, timeout, deadline, f"R1 {code}", frame_length),
                                              check))
            refusal = error_text(data_sets)
            if refusal is not None:
                raise Iec62056Error(f"the meter answered {code} with {refusal}: the profile does not fit this meter")
            found.extend(data_sets)
        return values_of(found, wanted, meter)

    def _send(self, port: serial.SerialBase, frame: bytes) -> None:
        self.requests += 1
        port.write(frame)

    @staticmethod
    def _receive(port: serial.SerialBase, timeout: float, deadline: float, after: str,
                 complete: Callable[[bytes], int | None]) -> bytes:
        """Bytes until ``complete`` says the frame is whole; silence longer than ``timeout`` ends it."""
        buffer = b""
        quiet_since = time.monotonic()
        while True:
            chunk = port.read(port.in_waiting or 1)
            now = time.monotonic()
            if chunk:
                buffer += chunk
                quiet_since = now
                length = complete(buffer)
                if length:
                    return buffer[:length]
            elif now - quiet_since > timeout or now > deadline:
                if not buffer:
                    raise Iec62056Error(f"no answer to {after} within {timeout:g} s")
                raise Iec62056Error(f"the answer to {after} stopped after {len(buffer)} bytes: {buffer[:40]!r}")


def set_baud(port: serial.SerialBase, baud: int) -> None:
    # Only a change reconfigures the port: a pseudo-terminal (and some USB adapters) refuse to be set again.
    if port.baudrate != baud:
        port.baudrate = baud


def values_of(data_sets: list[DataSet], wanted: tuple[IecValue, ...], meter: MeterConfig) -> dict[str, str]:
    """{meaning: decimal string} for the values a profile asks for, found in a meter's data sets by name
    (OBIS codes compared without the meter's medium, channel and billing-period decorations)."""
    by_name: dict[str, list[str]] = {}
    for data_set in data_sets:
        by_name.setdefault(obis_key(data_set.name), []).extend(data_set.values)
    values = {}
    for value in wanted:
        found = by_name.get(obis_key(value.code), [])
        if value.index >= len(found):
            # A profile lists what a model can publish; a single-phase meter has no L2 and L3. Only a meter that
            # sent nothing the profile knows is the wrong profile.
            continue
        try:
            number = Decimal(found[value.index]) * Decimal(value.scale)
        except InvalidOperation as exc:
            raise Iec62056Error(f"{value.code} = {found[value.index]!r} is not a number (for {value.meaning})") from exc
        if not number.is_finite():
            raise Iec62056Error(f"{value.code} = {found[value.index]!r} is not a finite number")
        values[value.meaning] = str(number)
    if wanted and not values:
        raise Iec62056Error(f"meter {meter.id} sent none of {', '.join(v.code for v in wanted)}: "
                            "the profile does not fit this meter")
    return values
