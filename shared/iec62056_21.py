"""IEC 62056-21 (formerly IEC 61107) mode C, as bytes in and values out: the sign-on, the meter's
identification and its baud rate, the option select, the programming-mode commands (password, read), the data
blocks with their block check character, and the data sets inside them (``1.8.0(012345.67*kWh)``,
``ET0PE(16907.9477764)``). The serial line itself is the gateway's (``edge/iec62056_bus.py``).

The frames, as the standard has them (7 data bits, even parity, 1 stop bit; 300 baud until the option select):

    master  /?{address}!CR LF                      sign-on (the address may be empty: the one meter there)
    meter   /XXXZ{identification}CR LF             XXX manufacturer, Z the highest baud rate it offers
    master  ACK 0 Z Y CR LF                        Y 0: data readout, 1: programming mode; then both at Z
    meter   STX {data block} ! CR LF ETX BCC       readout: every data set the meter publishes
    meter   SOH P0 STX ({serial}) ETX BCC          programming: the meter asks for the password
    master  SOH P1 STX ({password}) ETX BCC        → meter ACK, or NAK / an error block
    master  SOH R1 STX {name}({argument}) ETX BCC  → meter STX {name}(value)CR LF … ETX BCC
    master  SOH B0 ETX BCC                         break: the meter returns to waiting for a sign-on

BCC is the XOR of every byte after the first SOH or STX up to and including ETX. Energomera's meters
(CE102, CE301, CE303) compute it as the sum of those bytes modulo 128 instead — a profile says which
(``check = "sum7"``); the frames of a real CE301 in tests/edge/test_iec62056_21.py carry it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
CRLF = b"\r\n"

# The baud-rate character of mode C's identification and option select.
BAUD_RATES = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
READOUT, PROGRAMMING = "0", "1"

_ADDRESS = re.compile(r"[0-9A-Za-z ]{0,32}")
_IDENTIFICATION = re.compile(rb"/([A-Za-z]{2}[A-Za-z])([0-9A-Z])(.{1,16})\r\n", re.DOTALL)
# name(value*unit)(value*unit)…: a data set; a line may hold several, a value several fields.
_DATA_SET = re.compile(r"([^()\r\n!]*)((?:\([^()]*\))+)")
_VALUE = re.compile(r"\(([^()*]*)(?:\*([^()]*))?\)")


class Iec62056Error(ValueError):
    """A frame that is not what the standard allows; the message says which part and why."""


@dataclass(frozen=True)
class Identification:
    manufacturer: str  # three letters: EKT (Energomera), NIK, … — a lower-case third letter: 20 ms reaction
    baud_char: str
    identification: str

    @property
    def baud(self) -> int:
        return BAUD_RATES[self.baud_char]


@dataclass(frozen=True)
class DataSet:
    name: str  # an OBIS code (1.8.0, 1-0:32.7.0*255) or a maker's parameter name (ET0PE)
    values: tuple[str, ...]
    unit: str = ""

    @property
    def value(self) -> str:
        return self.values[0]


def sign_on(address: str = "") -> bytes:
    """The request that wakes a meter: on a bus of several, the one with this address."""
    if not _ADDRESS.fullmatch(address):
        raise Iec62056Error(f"meter address {address!r}: up to 32 letters, digits or spaces")
    return f"/?{address}!".encode("ascii") + CRLF


def parse_identification(line: bytes) -> Identification:
    found = _IDENTIFICATION.fullmatch(line)
    if found is None:
        raise Iec62056Error(f"identification {line[:40]!r}: expected /XXXZ…CR LF")
    manufacturer, baud_char, identification = (part.decode("ascii", "replace") for part in found.groups())
    if baud_char not in BAUD_RATES:
        raise Iec62056Error(f"identification {line[:40]!r}: baud character {baud_char!r} is not mode C's 0–6")
    return Identification(manufacturer, baud_char, identification)


def option_select(baud_char: str, mode: str = READOUT) -> bytes:
    if baud_char not in BAUD_RATES or mode not in (READOUT, PROGRAMMING):
        raise Iec62056Error(f"option select: baud {baud_char!r}, mode {mode!r}")
    return bytes([ACK]) + f"0{baud_char}{mode}".encode("ascii") + CRLF


def agreed_baud(offered: Identification, highest: int) -> str:
    """The baud character both sides can use: the meter's highest, or ours when lower."""
    usable = [char for char, baud in BAUD_RATES.items() if baud <= min(offered.baud, highest)]
    return max(usable, key=BAUD_RATES.__getitem__)


CHECKS = ("xor", "sum7")


def bcc(data: bytes, check: str = "xor") -> int:
    """The block check character of ``data`` (the bytes after SOH/STX, ETX included)."""
    if check == "sum7":
        return sum(data) & 0x7F
    result = 0
    for byte in data:
        result ^= byte
    return result


def command(name: str, data: str = "", check: str = "xor") -> bytes:
    """A programming-mode command: P1 (password), R1 (read), W1 (write), B0 (break, no data)."""
    body = name.encode("ascii") + (bytes([STX]) + data.encode("ascii") if data or name != "B0" else b"")
    body += bytes([ETX])
    return bytes([SOH]) + body + bytes([bcc(body, check)])


def password(secret: str, check: str = "xor") -> bytes:
    return command("P1", f"({secret})", check)


def read(name: str, argument: str = "", check: str = "xor") -> bytes:
    return command("R1", f"{name}({argument})", check)


def data_block(text: str, check: str = "xor") -> bytes:
    """STX text ETX BCC: what a meter answers (used by the meter simulator)."""
    body = text.encode("ascii") + bytes([ETX])
    return bytes([STX]) + body + bytes([bcc(body, check)])


def frame_length(buffer: bytes) -> int | None:
    """How long the frame at the start of ``buffer`` is once it is whole (ETX and its BCC arrived), or None.
    A lone ACK or NAK is a whole frame of one byte."""
    if not buffer:
        return None
    if buffer[0] in (ACK, NAK):
        return 1
    end = buffer.find(bytes([ETX]))
    return end + 2 if end >= 0 and len(buffer) >= end + 2 else None


def block_text(frame: bytes, check: str = "xor") -> str:
    """The data of a block (STX … ETX BCC or SOH … ETX BCC), checked: the BCC, the characters."""
    if len(frame) < 3 or frame[0] not in (STX, SOH) or frame[-2] != ETX:
        raise Iec62056Error(f"block {frame[:40]!r}: expected STX … ETX BCC")
    expected = bcc(frame[1:-1], check)
    if frame[-1] != expected:
        raise Iec62056Error(f"block of {len(frame)} bytes: BCC is 0x{frame[-1]:02x}, the data gives 0x{expected:02x}")
    data = frame[1:-2]
    if any(byte > 0x7F for byte in data):
        raise Iec62056Error("block: a byte above 0x7F (the line is 7-bit ASCII)")
    return data.decode("ascii")


def parse_command(frame: bytes, check: str = "xor") -> tuple[str, str]:
    """A command frame (SOH name [STX data] ETX BCC) → its name and data: ``("P0", "(777777)")``."""
    if not frame or frame[0] != SOH:
        raise Iec62056Error(f"command {frame[:40]!r}: expected SOH")
    text = block_text(frame, check)
    name, _, data = text.partition(chr(STX))
    return name, data


def parse_data(text: str) -> list[DataSet]:
    """Every data set of a block, in order; a readout's closing ``!`` ends it."""
    found: list[DataSet] = []
    for number, line in enumerate(text.split("\r\n"), start=1):
        if line in ("", "!"):
            continue
        position = 0
        for match in _DATA_SET.finditer(line):
            if line[position:match.start()].strip():
                raise Iec62056Error(f"line {number} {line[:40]!r}: {line[position:match.start()]!r} is no data set")
            fields = _VALUE.findall(match.group(2))
            found.append(DataSet(match.group(1).strip(), tuple(value for value, _ in fields), fields[0][1]))
            position = match.end()
        if line[position:].strip() not in ("", "!"):
            raise Iec62056Error(f"line {number} {line[:40]!r}: {line[position:]!r} is no data set")
    return found


def obis_key(name: str) -> str:
    """An OBIS code as profiles name it, whatever the meter prints around it: ``1-0:1.8.0*255`` → ``1.8.0``.
    A billing period's value (``1.8.0*01``, ``1.8.0&01``) keeps its suffix: it is not the current one."""
    core = name.split(":", 1)[-1]
    return core.removesuffix("*255").removesuffix("&255")


def error_text(data_sets: list[DataSet]) -> str | None:
    """A meter's refusal inside a block: ``(ERR12)`` with no name."""
    if len(data_sets) == 1 and not data_sets[0].name and data_sets[0].value.upper().startswith("ERR"):
        return data_sets[0].value
    return None
