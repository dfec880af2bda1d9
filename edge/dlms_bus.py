"""One DLMS/COSEM line over HDLC (IEC 62056-46) — an RS-485 pair on a serial port, or an RS-485-to-Ethernet
converter at ``socket://host:port`` — and the meters on it, read one session at a time:
SNRM/UA to open the HDLC link to the meter's address, an application association (AARQ/AARE) with the lowest
security or low-level security (the meter's password), GET of each object the profile lists, DISC.

dlms-cosem encodes and decodes the APDUs and HDLC frames and keeps the association's state; this module moves
the bytes under the bus's timeout and checks every frame (its HCS and FCS, and that it came from the meter
asked) before the library sees it, so that a meter that is silent, stops half-way or sends a damaged frame
costs at most one timeout and says which. A register's value is exact: value × 10^scaler, in Decimal, in the profile's unit.
"""

from __future__ import annotations

import logging
import re
import string
import time
from dataclasses import dataclass
from decimal import Decimal

import serial
import structlog
from dlms_cosem import dlms_data, enumerations, exceptions
from dlms_cosem.client import DlmsClient
from dlms_cosem.cosem import CosemAttribute, Obis
from dlms_cosem.cosem.attribute_with_selection import CosemAttributeWithSelection
from dlms_cosem.crc import CRCCCITT
from dlms_cosem.hdlc.state import IDLE, NEED_DATA
from dlms_cosem.io import HdlcTransport
from dlms_cosem.protocol import acse, xdlms
from dlms_cosem.security import LowLevelSecurityAuthentication, NoSecurityAuthentication

from edge.config import MeterConfig
from edge.serial_line import SerialMeterLine
from shared.profiles import DlmsObjectDef, MeterProfile

log = logging.getLogger("balans.edge.dlms")

# dlms-cosem logs every frame through structlog, which prints to stdout unless configured: keep its warnings only.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

FLAG = 0x7E
FCS = CRCCCITT()
SESSION_SECONDS = 60.0  # no session, however many objects, holds the line longer
# What a reading's value may look like in a batch (the cloud refuses a batch holding anything else).
PLAIN_DECIMAL = re.compile(r"-?\d{1,12}(\.\d{1,9})?")
WITH_LIST_MAX = 10  # attributes per GET-with-list: the request stays inside one 128-byte HDLC information field
# The units of the Blue Book's enumeration a profile can keep (IEC 62056-6-2, class 3 scaler_unit).
UNITS = {27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 35: "V", 44: "Hz", 255: ""}
# (the meter's unit, the profile's) → the power of ten between them
CONVERSIONS = {("Wh", "kWh"): -3, ("W", "kW"): -3, ("varh", "kvarh"): -3}
REFUSED = {
    enumerations.AcseServiceUserDiagnostics.AUTHENTICATION_FAILED:
        "the password is wrong: set the meter's password = \"…\" in the configuration",
    enumerations.AcseServiceUserDiagnostics.AUTHENTICATION_REQUIRED:
        "the meter wants a password for this client: set password = \"…\" for it (low-level security)",
    enumerations.AcseServiceUserDiagnostics.AUTHENTICATION_MECHANISM_NAME_REQUIRED:
        "the meter wants a password for this client: set password = \"…\" for it (low-level security)",
    enumerations.AcseServiceUserDiagnostics.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED:
        "the meter does not offer this security level to this client (the profile's client_lowest/client_lls)",
    enumerations.AcseServiceUserDiagnostics.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED:
        "the meter does not speak logical-name referencing without ciphering (HLS and ciphering are not supported)",
}


class DlmsError(ValueError):
    """A meter that did not answer as DLMS/COSEM over HDLC asks; the message says why."""


class DlmsSilence(DlmsError):
    """No answer, or one that stopped half-way: the meter is not listening, so nothing more is asked of it."""


def obis(code: str) -> Obis:
    """The six groups A.B.C.D.E.F of a profile's OBIS code (the library's parser drops the F group)."""
    a, b, c, d, e, f = (int(group) for group in code.split("."))
    return Obis(a, b, c, d, e, f)


def address_length(frame: bytes, start: int) -> int:
    """HDLC addresses end at the byte whose lowest bit is set (1, 2 or 4 bytes)."""
    for length in range(1, 5):
        if start + length > len(frame):
            break
        if frame[start + length - 1] & 1:
            return length
    raise DlmsError(f"a frame whose address does not end: {frame[:12].hex(' ')}")


def check_frame(frame: bytes) -> tuple[bytes, int]:
    """The source address and control byte of a whole HDLC frame (flags included), once its frame check
    sequence and — when it carries information — its header check sequence are right."""
    if len(frame) < 9 or frame[0] != FLAG or frame[-1] != FLAG:
        raise DlmsError(f"a frame of {len(frame)} bytes without its flags: {frame[:16].hex(' ')}")
    body = frame[1:-1]
    if FCS.calculate_for(body[:-2]) != body[-2:]:
        raise DlmsError(f"bad FCS: the frame gives {body[-2:].hex()}, its bytes {FCS.calculate_for(body[:-2]).hex()}"
                        " (noise on the line, or two meters answering)")
    destination = address_length(body, 2)
    source = address_length(body, 2 + destination)
    header = 2 + destination + source + 1
    if len(body) > header + 2 and FCS.calculate_for(body[:header]) != body[header:header + 2]:
        raise DlmsError(f"bad HCS: the frame gives {body[header:header + 2].hex()}, "
                        f"its header {FCS.calculate_for(body[:header]).hex()}")
    return bytes(body[2 + destination:2 + destination + source]), body[header - 1]


class HdlcLine:
    """The library's byte I/O over the bus's open port: every read waits at most the meter's timeout, then
    says what it was waiting for. The port stays open between sessions (the bus owns it)."""

    def __init__(self, port: serial.SerialBase, timeout: float, deadline: float):
        self.port, self.timeout, self.deadline = port, timeout, deadline
        self.what = "the SNRM"

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def recv(self, amount: int = 1, so_far: bytes = b"") -> bytes:
        buffer = b""
        quiet_since = time.monotonic()
        while len(buffer) < amount:
            chunk = self.port.read(min(amount - len(buffer), max(self.port.in_waiting, 1)))
            now = time.monotonic()
            if chunk:
                buffer += chunk
                quiet_since = now
            elif now - quiet_since > self.timeout or now > self.deadline:
                got = so_far + buffer
                if not got:
                    raise DlmsSilence(f"no answer to {self.what} within {self.timeout:g} s")
                raise DlmsSilence(f"the answer to {self.what} stopped after {len(got)} bytes: {got[:24].hex(' ')}")
        return buffer

    def recv_until(self, end: bytes) -> bytes:
        # Never called: CheckedHdlcTransport.recv_frame reads each frame whole, by its length field.
        raise RuntimeError("DLMS frames are read whole by CheckedHdlcTransport.recv_frame, never up to a marker")


class CheckedHdlcTransport(HdlcTransport):
    """dlms-cosem's HDLC transport, reading one whole frame at a time by its length and checking it first.
    On its own the library looks for a frame's end at the next 0x7E — but DLMS's HDLC does not escape 0x7E
    inside a frame (an HCS, an FCS or a value may hold it), and a damaged frame looks like an incomplete one:
    either way it waits for bytes that never come."""

    def next_event(self):
        frame = self.recv_frame()
        connection = self.hdlc_connection
        connection.buffer = bytearray(frame)  # exactly this frame, its end where its length says
        connection.buffer_search_position = len(frame) - 1
        event = connection.next_event()
        if event is NEED_DATA:
            raise DlmsError(f"the answer to {self.io.what} is a frame the link does not expect now: "
                            f"{frame[:24].hex(' ')}")
        return event

    def recv_frame(self) -> bytes:
        line: HdlcLine = self.io
        start = line.recv(1)
        while start[0] == FLAG:  # the opening flag, or the closing flag of a frame shared with the next
            start = line.recv(1, b"~")
        if start[0] & 0xF0 != 0xA0:
            raise DlmsError(f"the answer to {line.what} is no HDLC frame: it starts {start.hex()}")
        head = bytes([FLAG]) + start + line.recv(1, b"~" + start)
        length = ((head[1] & 0x07) << 8) | head[2]
        frame = head + line.recv(length - 1, head)  # the rest of the frame and its closing flag
        try:
            source, control = check_frame(frame)
        except DlmsError as exc:
            raise DlmsError(f"the answer to {line.what}: {exc}") from exc
        if source != self.server_hdlc_address.to_bytes():
            raise DlmsError(f"the answer to {line.what} came from HDLC address {source.hex()}, "
                            f"asked {self.server_hdlc_address.to_bytes().hex()}")
        if control & 0xEF == 0x0F:
            raise DlmsError(f"the meter answered {line.what} with DM (disconnected mode): the link is not open, or "
                            "the meter refuses this client address")
        if control & 0xEF == 0x87:
            raise DlmsError(f"the meter rejected the frame of {line.what} (FRMR)")
        return frame


@dataclass(frozen=True)
class Found:
    """What the meter answered for one attribute: its data, or why not."""

    data: object = None  # dlms_data.AbstractDlmsData
    refusal: enumerations.DataAccessResult | None = None


def number_of(data, what: str) -> Decimal:
    value = data.to_python() if hasattr(data, "to_python") else data
    if isinstance(value, bool) or not isinstance(value, int):
        raise DlmsError(f"{what} is {type(data).__name__} {value!r}, not an integer")
    return Decimal(value)


def text_of(data) -> str:
    """A Data object's value as text: a serial number in an octet or visible string, or an integer."""
    value = data.to_python()
    if isinstance(value, (bytes, bytearray)):
        decoded = bytes(value).decode("latin-1")
        return decoded.strip("\x00 ") if all(c in string.printable for c in decoded) else bytes(value).hex().upper()
    if isinstance(value, str):
        return value.strip("\x00 ")
    return str(number_of(data, "the value"))


def register_value(definition: DlmsObjectDef, value, scaler_unit) -> Decimal:
    """A register's value × 10^scaler, exactly, converted from the meter's unit to the profile's."""
    where = f"{definition.obis} ({definition.meaning})"
    number = number_of(value, f"the value of {where}")
    parts = scaler_unit.to_python() if hasattr(scaler_unit, "to_python") else scaler_unit
    if not isinstance(parts, list) or len(parts) != 2:
        raise DlmsError(f"the scaler_unit of {where} is {parts!r}, not {{scaler, unit}}")
    scaler, code = parts
    if not isinstance(scaler, int) or not isinstance(code, int):
        raise DlmsError(f"the scaler_unit of {where} is {parts!r}, not {{integer, enum}}")
    unit = UNITS.get(code)
    if unit is None:
        raise DlmsError(f"{where} is in unit {code} of the Blue Book, which the gateway does not keep")
    power = scaler
    if definition.unit and unit != definition.unit:
        if (unit, definition.unit) not in CONVERSIONS:
            raise DlmsError(f"{where} is in {unit or 'no unit'}, the profile keeps it in {definition.unit}: "
                            "the profile does not fit this meter")
        power += CONVERSIONS[unit, definition.unit]
    return number.scaleb(power)


def plain(number: Decimal, where: str) -> str:
    """A register's value as a batch carries it: fixed-point, no exponent (12 400 Wh with scaler 2 is
    "1240000", not "1.24E+6"), at most nine decimals — trailing zeros dropped before any digit would be."""
    text = format(number, "f")
    if "." in text and len(text.split(".")[1]) > 9:
        text = format(number.normalize(), "f")
    if not PLAIN_DECIMAL.fullmatch(text):
        raise DlmsError(f"{where} = {text} is outside what a reading holds (12 digits, 9 decimals)")
    return text


def values_of(found: dict[tuple[str, int], Found], wanted: tuple[DlmsObjectDef, ...], meter: MeterConfig,
              security: str) -> dict[str, str]:
    """{meaning: decimal string} from the answers. An object the meter does not have (a single-phase meter's
    L2 voltage) is left out; one it refuses to this association is an error that names it. A Data object
    that is no number a reading can hold (a serial number with letters) is left out too, with a warning."""
    values = {}
    for definition in wanted:
        answers = [found[definition.obis, attribute] for attribute in ((2, 3) if definition.class_id != 1 else (2,))]
        refusal = next((a.refusal for a in answers if a.refusal is not None), None)
        if refusal in (enumerations.DataAccessResult.READ_WRITE_DENIED,
                       enumerations.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED):
            raise DlmsError(f"the meter denies {definition.obis} ({definition.meaning}) to the {security} association "
                            f"({refusal.name.lower().replace('_', '-')}): give meter {meter.id} its password, "
                            "or take the object out of the profile")
        if refusal is not None:
            log.debug("meter %s has no %s: %s", meter.id, definition.obis, refusal.name)
            continue
        if definition.class_id == 1:
            text = text_of(answers[0].data)
            if PLAIN_DECIMAL.fullmatch(text):
                values[definition.meaning] = text
            else:
                log.warning("meter %s: %s (%s) is %r, not a number a reading holds: left out", meter.id,
                            definition.obis, definition.meaning, text)
        else:
            number = register_value(definition, answers[0].data, answers[1].data)
            values[definition.meaning] = plain(number, f"{definition.obis} ({definition.meaning})")
    if wanted and not values:
        raise DlmsError(f"meter {meter.id} has none of {', '.join(d.obis for d in wanted)}: "
                        "the profile does not fit this meter")
    return values


def parse_data(raw: bytes, what: str):
    try:
        return dlms_data.DlmsDataParser().parse(raw, limit=1)[0]
    except (ValueError, KeyError, IndexError, NotImplementedError) as exc:
        raise DlmsError(f"the answer to {what} is no A-XDR value the library decodes ({raw[:12].hex(' ')}): "
                        f"{exc!r}") from exc


class DlmsBus(SerialMeterLine):
    """A serial line spoken to in DLMS/COSEM over HDLC (edge/serial_line.py), 8N1 as the bus says: one meter
    session at a time; a meter's fault ends its session, the next one's SNRM resets it."""

    fault = DlmsError

    async def read(self, meter: MeterConfig, meanings: tuple[str, ...] | None = None) -> dict[str, str]:
        profile = self.profiles[meter.profile]
        wanted = tuple(o for o in profile.objects if meanings is None or o.meaning in meanings)
        return await self.session(f"meter {meter.id}", lambda: self._session(meter, profile, wanted))

    def _session(self, meter: MeterConfig, profile: MeterProfile, wanted: tuple[DlmsObjectDef, ...]) -> dict[str, str]:
        port = self._open()
        port.reset_input_buffer()
        timeout = meter.timeout if meter.timeout is not None else self.config.timeout
        line = HdlcLine(port, timeout, time.monotonic() + SESSION_SECONDS)
        security = "low-level security" if meter.password else "lowest security"
        transport = CheckedHdlcTransport(
            client_logical_address=profile.client_lls if meter.password else profile.client_lowest,
            server_logical_address=profile.logical_device, server_physical_address=meter.unit, io=line,
            # a physical address past 127 needs the four-byte form, which dlms-cosem writes only when told to
            extended_addressing=meter.unit > 127)
        authentication = (LowLevelSecurityAuthentication(secret=meter.password.encode("latin-1")) if meter.password
                          else NoSecurityAuthentication())
        client = DlmsClient(transport=transport, authentication=authentication)
        self.requests += 1
        transport.connect()  # SNRM → UA
        try:
            line.what = "the AARQ"
            conformance = self._associate(client, security)
            found = self._get(client, line, wanted, with_list=conformance.multiple_references)
            values = values_of(found, wanted, meter, security)
        except DlmsSilence:
            raise
        except DlmsError:
            self._disconnect(transport, line)  # the meter answered and said no: leave it ready for the next
            raise
        self._disconnect(transport, line)
        return values

    def _disconnect(self, transport: CheckedHdlcTransport, line: HdlcLine) -> None:
        """DISC releases the association with the link (the Green Book's way; no RLRQ needed). A meter that
        does not confirm is not worth another timeout: the next SNRM resets it."""
        if transport.hdlc_connection.state.current_state is not IDLE:
            return  # a frame was refused half-way through an exchange: the link is not in a state to close
        line.what = "the DISC"
        line.timeout = min(line.timeout, 0.2)
        try:
            transport.disconnect()
        except (DlmsError, exceptions.LocalDlmsProtocolError, ValueError) as exc:
            log.debug("DISC not confirmed: %s", exc)

    def _exchange(self, client: DlmsClient, request, what: str):
        client.transport.io.what = what
        self.requests += 1
        client.send(request)
        try:
            answer = client.next_event()
        except (ValueError, KeyError, IndexError, NotImplementedError,
                exceptions.LocalDlmsProtocolError) as exc:
            raise DlmsError(f"the answer to {what} is no APDU the library decodes: {exc!r}") from exc
        if isinstance(answer, xdlms.ExceptionResponse):
            raise DlmsError(f"the meter answered {what} with an exception: {answer.state_error.name}, "
                            f"{answer.service_error.name}")
        return answer

    def _associate(self, client: DlmsClient, security: str) -> xdlms.Conformance:
        aare = self._exchange(client, client.dlms_connection.get_aarq(), "the AARQ")
        if not isinstance(aare, acse.ApplicationAssociationResponse):
            raise DlmsError(f"the meter answered the AARQ with {type(aare).__name__}, not an AARE")
        if aare.result is not enumerations.AssociationResult.ACCEPTED:
            diagnostic = aare.result_source_diagnostics
            why = REFUSED.get(diagnostic, "")
            raise DlmsError(f"the meter refused the association with {security} ({aare.result.name.lower()}, "
                            f"{diagnostic.name.lower().replace('_', '-')}){': ' + why if why else ''}")
        content = aare.user_information.content if aare.user_information else None
        if not isinstance(content, xdlms.InitiateResponse):
            raise DlmsError(f"the meter accepted the association but sent no InitiateResponse: {content!r}")
        return content.negotiated_conformance

    def _get(self, client: DlmsClient, line: HdlcLine, wanted: tuple[DlmsObjectDef, ...],
             with_list: bool) -> dict[tuple[str, int], Found]:
        """Value (attribute 2) and, for a register, scaler_unit (3) of every object — read each time, so a
        meter swapped for another model is never scaled by the old one's scaler. In lists of ten when the
        meter's conformance offers GET-with-list, one GET each when it does not."""
        attributes = [(d, attribute) for d in wanted for attribute in ((2, 3) if d.class_id != 1 else (2,))]
        found: dict[tuple[str, int], Found] = {}
        if with_list and len(attributes) > 1:
            for start in range(0, len(attributes), WITH_LIST_MAX):
                chunk = attributes[start:start + WITH_LIST_MAX]
                request = xdlms.GetRequestWithList(cosem_attributes_with_selection=[
                    CosemAttributeWithSelection(CosemAttribute(enumerations.CosemInterface(d.class_id), obis(d.obis),
                                                               attribute), None) for d, attribute in chunk])
                what = f"GET {', '.join(dict.fromkeys(d.obis for d, _ in chunk))}"
                answer = self._exchange(client, request, what)
                if not isinstance(answer, xdlms.GetResponseWithList) or len(answer.response_data) != len(chunk):
                    raise DlmsError(f"the meter answered {what} with {type(answer).__name__}, not one result each")
                for (d, attribute), item in zip(chunk, answer.response_data, strict=True):
                    refused = isinstance(item, enumerations.DataAccessResult)
                    found[d.obis, attribute] = Found(None, item) if refused else Found(item)
            return found
        for d, attribute in attributes:
            found[d.obis, attribute] = self._get_one(client, d, attribute)
        return found

    def _get_one(self, client: DlmsClient, definition: DlmsObjectDef, attribute: int) -> Found:
        what = f"GET {definition.obis} attribute {attribute}"
        cosem = CosemAttribute(enumerations.CosemInterface(definition.class_id), obis(definition.obis), attribute)
        answer = self._exchange(client, xdlms.GetRequestNormal(cosem_attribute=cosem), what)
        data = b""
        while isinstance(answer, xdlms.GetResponseWithBlock):  # a long value comes in blocks
            data += answer.data
            answer = self._exchange(client, xdlms.GetRequestNext(invoke_id_and_priority=answer.invoke_id_and_priority,
                                                                 block_number=answer.block_number), what)
        if isinstance(answer, (xdlms.GetResponseNormalWithError, xdlms.GetResponseLastBlockWithError)):
            return Found(None, answer.error)
        if not isinstance(answer, (xdlms.GetResponseNormal, xdlms.GetResponseLastBlock)):
            raise DlmsError(f"the meter answered {what} with {type(answer).__name__}")
        return Found(parse_data(data + answer.data, what))
